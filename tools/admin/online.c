/*
 * online.c — the commands that talk to a running server's admin API.
 *
 * Each command checks its arguments (a usage error never reaches the server), asks for
 * confirmation when it destroys something, makes one call (backup and console poll),
 * and prints the answer: with --json the server's JSON as it is (its field names are the
 * stable interface), otherwise a table or a few aligned lines.
 */
#include "admin.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ finding the server */

static int read_first_line(const char *path, char *out, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  bool ok = fgets(out, (int)cap, f) != NULL;
  fclose(f);
  if (!ok) {
    errno = ENODATA;
    return -1;
  }
  out[strcspn(out, "\r\n")] = '\0';
  return 0;
}

int adm_resolve(adm *a) {
  if (a->url_buf[0] && a->token_buf[0]) return EXIT_OK;
  const char *url = a->url;
  if (!url || !*url) url = getenv("ISOWORLD_ADMIN_URL");
  if (url && *url) {
    snprintf(a->url_buf, sizeof a->url_buf, "%s", url);
  } else {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/admin.json", a->data_dir);
    struct stat st;
    if (stat(a->data_dir, &st) != 0)
      return adm_fail(a, EXIT_UNREACHABLE, "no data directory %s: give the server's --data-dir (or --url and --token)",
                      a->data_dir);
    if (stat(path, &st) != 0)
      return adm_fail(a, EXIT_UNREACHABLE, "no server is running on %s (%s is missing): start isoworld, or give --url",
                      a->data_dir, path);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    const char *u = j ? json_string_value(json_object_get(j, "url")) : NULL;
    if (!u) {
      json_decref(j);
      return adm_fail(a, EXIT_UNREACHABLE, "cannot read %s: %s", path, j ? "no \"url\" in it" : e.text);
    }
    snprintf(a->url_buf, sizeof a->url_buf, "%s", u);
    json_decref(j);
  }
  char host[256], port[16];
  if (http_parse_url(a->url_buf, host, sizeof host, port, sizeof port) != 0)
    return adm_fail(a, EXIT_USAGE, "bad URL '%s': expected http://HOST:PORT", a->url_buf);
  const char *tok = a->token;
  if (!tok || !*tok) tok = getenv("ISOWORLD_ADMIN_TOKEN");
  if (tok && *tok) {
    snprintf(a->token_buf, sizeof a->token_buf, "%s", tok);
  } else {
    char path[PATH_MAX];
    if (a->token_file)
      snprintf(path, sizeof path, "%s", a->token_file);
    else
      snprintf(path, sizeof path, "%s/admin.token", a->data_dir);
    if (read_first_line(path, a->token_buf, sizeof a->token_buf) != 0)
      return adm_fail(a, EXIT_REFUSED, "cannot read the admin token from %s: %s%s", path, strerror(errno),
                      errno == EACCES ? " (run as the server's user, or give --token)" : "");
  }
  if (!a->token_buf[0]) return adm_fail(a, EXIT_REFUSED, "the admin token is empty");
  return EXIT_OK;
}

/* ------------------------------------------------------------------ calls */

static volatile sig_atomic_t interrupted; /* Ctrl-C during player console --follow */

static void url_encode(const char *s, char *out, size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  size_t k = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p && k + 4 < cap; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-_.~", *p)) {
      out[k++] = (char)*p;
    } else {
      out[k++] = '%';
      out[k++] = hex[*p >> 4];
      out[k++] = hex[*p & 15];
    }
  }
  out[k] = '\0';
}

int adm_call(adm *a, const char *method, const char *path, json_t *body, int timeout_s, json_t **out) {
  *out = NULL;
  int rc = adm_resolve(a);
  if (rc != EXIT_OK) {
    json_decref(body);
    return rc;
  }
  char h_token[320], h_user[96];
  snprintf(h_token, sizeof h_token, "X-Admin-Token: %s", a->token_buf);
  const char *who = a->as ? a->as : getenv("USER");
  if (!who || !*who) {
    struct passwd *pw = getpwuid(geteuid());
    who = pw ? pw->pw_name : NULL;
  }
  char who_clean[48];
  size_t k = 0;
  for (const char *p = who ? who : "admin"; *p && k < sizeof who_clean - 1; p++)
    if (*p > 32 && *p < 127 && *p != ':') who_clean[k++] = *p;
  who_clean[k] = '\0';
  snprintf(h_user, sizeof h_user, "X-Admin-User: %s", k ? who_clean : "admin");
  const char *headers[] = {h_token, h_user, NULL};
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  http_resp r;
  char err[512];
  int hr = http_request(a->url_buf, method, path, headers, text, (timeout_s ? timeout_s : a->timeout_s) * 1000, &r, err,
                        sizeof err);
  free(text);
  if (hr != 0 && interrupted) return EXIT_UNREACHABLE; /* Ctrl-C while following: the caller exits quietly */
  if (hr != 0) return adm_fail(a, EXIT_UNREACHABLE, "cannot reach the server at %s: %s", a->url_buf, err);
  json_error_t je;
  json_t *j = json_loadb(r.body, r.len, 0, &je);
  int status = r.status;
  http_resp_release(&r);
  if (!json_is_object(j)) {
    json_decref(j);
    return adm_fail(a, EXIT_REFUSED, "unexpected answer from %s (HTTP %d, not JSON)", a->url_buf, status);
  }
  if (status == 200 && json_integer_value(json_object_get(j, "ok")) == 1) {
    *out = j;
    return EXIT_OK;
  }
  const char *msg = json_string_value(json_object_get(j, "error"));
  const char *code = json_string_value(json_object_get(j, "code"));
  int exitc = status == 400 ? EXIT_USAGE : EXIT_REFUSED;
  char line[700];
  if (status == 401)
    snprintf(line, sizeof line, "refused: %s", msg ? msg : "unauthorized");
  else if (status == 404 && !code)
    snprintf(line, sizeof line, "the server does not know %s %s (is it an older isoworld?)", method, path);
  else
    snprintf(line, sizeof line, "%s%s", status == 400 ? "" : "refused: ", msg ? msg : "unknown error");
  fprintf(stderr, "isoworld-admin: %s%s: %s%s\n", adm_c(a, true, exitc == EXIT_USAGE ? "yellow" : "red"), a->cmd_name,
          line, adm_c(a, true, "reset"));
  if (a->json) {
    json_object_set_new(j, "http_status", json_integer(status));
    json_object_set_new(j, "exit", json_integer(exitc));
    adm_print_json(j);
  } else {
    json_decref(j);
  }
  return exitc;
}

static const char *js(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

static long long ji(json_t *o, const char *k) {
  return json_integer_value(json_object_get(o, k));
}

/* GET path?user=<name>[&extra] */
static int get_user(adm *a, const char *route, const char *name, json_t **out) {
  char enc[256], path[512];
  url_encode(name, enc, sizeof enc);
  snprintf(path, sizeof path, "%s?user=%s", route, enc);
  return adm_call(a, "GET", path, NULL, 0, out);
}

/* POST with {"user": name, ...extra} and the answer printed by `human` (or --json). */
static int post(adm *a, const char *route, json_t *body, int timeout_s, json_t **out) {
  return adm_call(a, "POST", route, body ? body : json_object(), timeout_s, out);
}

static int read_password_stdin(adm *a, char *out, size_t cap) {
  if (!fgets(out, (int)cap, stdin)) return adm_fail(a, EXIT_USAGE, "%s: no password on standard input", a->cmd_name);
  out[strcspn(out, "\r\n")] = '\0';
  return EXIT_OK;
}

/* ------------------------------------------------------------------ users */

int cmd_users_list(adm *a) {
  json_t *r;
  int rc = adm_call(a, "GET", "/admin/users", NULL, 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  adm_table t;
  adm_table_init(&t, 8, "ID", "USERNAME", "EMAIL", "CPU", "STATUS", "BUCKET", "LAST TICK", "CREATED");
  t.right[0] = t.right[3] = t.right[5] = t.right[6] = true;
  size_t i;
  json_t *u;
  json_array_foreach(json_object_get(r, "users"), i, u) {
    char cpu[24], bucket[24], last[24], created[32];
    snprintf(cpu, sizeof cpu, "%lld", ji(u, "cpu"));
    snprintf(bucket, sizeof bucket, "%lld", ji(u, "bucket"));
    snprintf(last, sizeof last, "%lld", ji(u, "last_tick"));
    adm_time_ms(ji(u, "created_ms"), created, sizeof created);
    adm_table_add(&t, js(u, "id"), js(u, "username"), js(u, "email"), cpu, js(u, "status"),
                  json_object_get(u, "bucket") ? bucket : "-", ji(u, "last_tick") ? last : "-", created);
  }
  adm_table_print(a, &t);
  adm_table_release(&t);
  json_decref(r);
  return EXIT_OK;
}

int cmd_users_show(adm *a) {
  json_t *r;
  int rc = get_user(a, "/admin/users/show", a->pos[0], &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  json_t *u = json_object_get(r, "user");
  char created[32], mem[32];
  adm_time_ms(ji(u, "created_ms"), created, sizeof created);
  adm_bytes((uint64_t)ji(u, "memory_bytes"), mem, sizeof mem);
  const char *b = adm_c(a, false, "bold"), *x = adm_c(a, false, "reset");
  printf("%suser%s        %s (id %s)\n", b, x, js(u, "username"), js(u, "id"));
  printf("%semail%s       %s\n", b, x, js(u, "email")[0] ? js(u, "email") : "-");
  printf("%sstatus%s      %s%s%s\n", b, x, json_is_true(json_object_get(u, "banned")) ? adm_c(a, false, "red") : "",
         js(u, "status"), x);
  printf("%spassword%s    %s\n", b, x, json_is_true(json_object_get(u, "password")) ? "set" : "none (tokens only)");
  printf("%scpu%s         limit %lld ms, bucket %lld, last ran at tick %lld using %lld ms\n", b, x, ji(u, "cpu"),
         ji(u, "bucket"), ji(u, "last_tick"), ji(u, "last_cpu_ms"));
  printf("%smemory%s      %s; %lld console command%s queued\n", b, x, mem, ji(u, "console_queue"),
         ji(u, "console_queue") == 1 ? "" : "s");
  printf("%screated%s     %s\n", b, x, created);
  printf("%srunning%s     branch %s\n\n", b, x, js(u, "branch"));
  adm_table t;
  adm_table_init(&t, 5, "BRANCH", "ACTIVE", "MODULES", "BYTES", "CHANGED");
  t.right[2] = t.right[3] = true;
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(u, "branches"), i, e) {
    char m[24], by[32], ts[32];
    snprintf(m, sizeof m, "%lld", ji(e, "modules"));
    adm_bytes((uint64_t)ji(e, "bytes"), by, sizeof by);
    adm_time_ms(ji(e, "timestamp_ms"), ts, sizeof ts);
    bool w = json_is_true(json_object_get(e, "active_world")), s = json_is_true(json_object_get(e, "active_sim"));
    adm_table_add(&t, js(e, "name"), w && s ? "world, sim" : w ? "world" : s ? "sim" : "", m, by, ts);
  }
  adm_table_print(a, &t);
  adm_table_release(&t);
  json_t *toks = json_object_get(u, "tokens");
  if (json_array_size(toks)) {
    putchar('\n');
    adm_table_init(&t, 4, "TOKEN ID", "LABEL", "CREATED", "EXPIRES");
    json_array_foreach(toks, i, e) {
      char c[32], x2[32];
      adm_time_ms(ji(e, "created_ms"), c, sizeof c);
      if (ji(e, "expires_ms"))
        adm_time_ms(ji(e, "expires_ms"), x2, sizeof x2);
      else
        snprintf(x2, sizeof x2, "never");
      adm_table_add(&t, js(e, "id"), js(e, "label"), c, x2);
    }
    adm_table_print(a, &t);
    adm_table_release(&t);
  }
  json_decref(r);
  return EXIT_OK;
}

int cmd_users_create(adm *a) {
  json_t *body = json_pack("{s:s}", "username", a->pos[0]);
  const char *email = adm_flag(a, "email"), *pw = adm_flag(a, "password"), *cpu = adm_flag(a, "cpu");
  int rc = EXIT_OK;
  char buf[512];
  if (pw && adm_has(a, "password-stdin")) {
    json_decref(body);
    return adm_fail(a, EXIT_USAGE, "%s: give --password or --password-stdin, not both", a->cmd_name);
  }
  if (adm_has(a, "password-stdin")) {
    if ((rc = read_password_stdin(a, buf, sizeof buf)) != EXIT_OK) {
      json_decref(body);
      return rc;
    }
    pw = buf;
  }
  if (email) json_object_set_new(body, "email", json_string(email));
  if (pw) json_object_set_new(body, "password", json_string(pw));
  if (cpu) {
    long long n;
    if (!adm_int_arg(a, "--cpu", cpu, 1, 10000, &n, &rc)) {
      json_decref(body);
      return rc;
    }
    json_object_set_new(body, "cpu", json_integer(n));
  }
  json_t *r;
  rc = post(a, "/admin/users/create", body, 0, &r);
  memset(buf, 0, sizeof buf);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  json_t *u = json_object_get(r, "user");
  printf("created user %s (id %s, CPU limit %lld ms)%s\n", js(u, "username"), js(u, "id"), ji(u, "cpu"),
         pw ? "" : "; no password: give it a token with `users issue-token`");
  json_decref(r);
  return EXIT_OK;
}

static int ban(adm *a, bool on) {
  int rc;
  if (on && !adm_confirm(a, &rc, "Ban user %s? Their code stops and the player API refuses them.", a->pos[0]))
    return rc;
  json_t *r;
  rc = post(a, on ? "/admin/users/ban" : "/admin/users/unban", json_pack("{s:s}", "user", a->pos[0]), 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  bool changed = json_is_true(json_object_get(r, "changed"));
  printf("%s %s%s\n", js(r, "username"),
         changed ? (on ? "is banned" : "is no longer banned") : (on ? "was already banned" : "was not banned"), "");
  json_decref(r);
  return EXIT_OK;
}

int cmd_users_ban(adm *a) {
  return ban(a, true);
}

int cmd_users_unban(adm *a) {
  return ban(a, false);
}

int cmd_users_set_cpu(adm *a) {
  long long n;
  int rc;
  if (!adm_int_arg(a, "MS", a->pos[1], 1, 10000, &n, &rc)) return rc;
  json_t *r;
  rc = post(a, "/admin/users/set-cpu", json_pack("{s:s, s:I}", "user", a->pos[0], "cpu", (json_int_t)n), 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  printf("%s: CPU limit %lld ms (was %lld ms), from the next tick\n", js(r, "username"), ji(r, "cpu"),
         ji(r, "previous"));
  json_decref(r);
  return EXIT_OK;
}

int cmd_users_reset_password(adm *a) {
  const char *pw = adm_flag(a, "password");
  char buf[512];
  int rc;
  if (pw && adm_has(a, "password-stdin"))
    return adm_fail(a, EXIT_USAGE, "%s: give --password or --password-stdin, not both", a->cmd_name);
  if (adm_has(a, "password-stdin")) {
    if ((rc = read_password_stdin(a, buf, sizeof buf)) != EXIT_OK) return rc;
    pw = buf;
  }
  if (!adm_confirm(a, &rc, "Replace the password of %s?", a->pos[0])) return rc;
  json_t *body = json_pack("{s:s}", "user", a->pos[0]);
  if (pw) json_object_set_new(body, "password", json_string(pw));
  json_t *r;
  rc = post(a, "/admin/users/reset-password", body, 0, &r);
  memset(buf, 0, sizeof buf);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  if (json_object_get(r, "password")) {
    adm_note(a, "new password for %s (shown once):", js(r, "username"));
    printf("%s\n", js(r, "password"));
  } else {
    printf("password of %s replaced\n", js(r, "username"));
  }
  json_decref(r);
  return EXIT_OK;
}

int cmd_users_issue_token(adm *a) {
  json_t *body = json_pack("{s:s}", "user", a->pos[0]);
  const char *label = adm_flag(a, "label"), *days = adm_flag(a, "days");
  int rc;
  if (label) json_object_set_new(body, "label", json_string(label));
  if (days) {
    long long n;
    if (!adm_int_arg(a, "--days", days, 1, 3650, &n, &rc)) {
      json_decref(body);
      return rc;
    }
    json_object_set_new(body, "days", json_integer(n));
  }
  json_t *r;
  rc = post(a, "/admin/users/issue-token", body, 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  char exp[32];
  if (ji(r, "expires_ms"))
    adm_time_ms(ji(r, "expires_ms"), exp, sizeof exp);
  else
    snprintf(exp, sizeof exp, "never");
  adm_note(a, "token for %s (id %s, expires %s; shown once, only its hash is kept):", js(r, "username"), js(r, "id"),
           exp);
  printf("%s\n", js(r, "token"));
  json_decref(r);
  return EXIT_OK;
}

int cmd_users_revoke_token(adm *a) {
  bool all = adm_has(a, "all");
  if (all == (a->n_pos == 2))
    return adm_fail(a, EXIT_USAGE, "%s: give a token ID (users show lists them) or --all", a->cmd_name);
  int rc;
  if (!adm_confirm(a, &rc, all ? "Revoke every token of %s?" : "Revoke token %s of %s?", all ? a->pos[0] : a->pos[1],
                   a->pos[0]))
    return rc;
  json_t *body = json_pack("{s:s}", "user", a->pos[0]);
  if (all)
    json_object_set_new(body, "all", json_true());
  else
    json_object_set_new(body, "id", json_string(a->pos[1]));
  json_t *r;
  rc = post(a, "/admin/users/revoke-token", body, 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  printf("%s: %lld token%s revoked\n", js(r, "username"), ji(r, "revoked"), ji(r, "revoked") == 1 ? "" : "s");
  json_decref(r);
  return EXIT_OK;
}

/* ------------------------------------------------------------------ world */

static void duration(long long s, char *out, size_t cap) {
  if (s < 60)
    snprintf(out, cap, "%llds", s);
  else if (s < 3600)
    snprintf(out, cap, "%lldm %llds", s / 60, s % 60);
  else if (s < 86400)
    snprintf(out, cap, "%lldh %lldm", s / 3600, (s % 3600) / 60);
  else
    snprintf(out, cap, "%lldd %lldh", s / 86400, (s % 86400) / 3600);
}

int cmd_world_status(adm *a) {
  json_t *r;
  int rc = adm_call(a, "GET", adm_has(a, "no-hash") ? "/admin/status?hash=0" : "/admin/status", NULL, 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  json_t *t = json_object_get(r, "tick"), *p = json_object_get(r, "players"), *st = json_object_get(r, "store");
  const char *b = adm_c(a, false, "bold"), *x = adm_c(a, false, "reset");
  bool paused = json_is_true(json_object_get(r, "paused"));
  printf("%sgame time%s    %lld  %s%s%s\n", b, x, ji(r, "game_time"), adm_c(a, false, paused ? "yellow" : "green"),
         paused ? "PAUSED" : "running", x);
  if (ji(r, "step_pending")) printf("%sstepping%s     %lld ticks to go\n", b, x, ji(r, "step_pending"));
  long long tms = ji(r, "tick_ms");
  printf("%stick rate%s    %lld ms%s\n", b, x, tms, tms == 0 ? " (as fast as possible)" : "");
  printf("%stick time%s    last %.2f ms, mean %.2f ms, max %.2f ms; ticks end every %.1f ms (last %lld ticks)\n", b, x,
         json_real_value(json_object_get(t, "last_ms")), json_real_value(json_object_get(t, "mean_ms")),
         json_real_value(json_object_get(t, "max_ms")), json_real_value(json_object_get(t, "interval_ms")),
         ji(t, "window"));
  printf("%splayers%s      %lld (%lld active, %lld banned)\n", b, x, ji(p, "total"), ji(p, "active"), ji(p, "banned"));
  json_t *w = json_object_get(r, "world");
  if (json_is_object(w))
    printf("%srooms%s        %lld (%lldx%lld, seed %lld)\n", b, x, ji(r, "rooms"), ji(w, "width"), ji(w, "height"),
           ji(w, "seed"));
  else
    printf("%srooms%s        %lld (this server has no world)\n", b, x, ji(r, "rooms"));
  if (json_object_get(r, "state_hash")) printf("%sstate hash%s   %s\n", b, x, js(r, "state_hash"));
  char used[32], map[32], up[32];
  adm_bytes((uint64_t)ji(st, "used"), used, sizeof used);
  adm_bytes((uint64_t)ji(st, "map_size"), map, sizeof map);
  duration(ji(r, "uptime_s"), up, sizeof up);
  printf("%sstore%s        %s used of a %s map, schema %lld, %s\n", b, x, used, map, ji(st, "schema_version"),
         js(r, "data_dir"));
  printf("%sserver%s       isoworld %s, up %s\n", b, x, js(r, "version"), up);
  json_decref(r);
  return EXIT_OK;
}

static int pause_resume(adm *a, bool pause) {
  json_t *r;
  int rc = post(a, pause ? "/admin/world/pause" : "/admin/world/resume", NULL, 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  bool changed = json_is_true(json_object_get(r, "changed"));
  printf("%s at game time %lld\n",
         pause ? (changed ? "paused" : "already paused") : (changed ? "resumed" : "already running"),
         ji(r, "game_time"));
  json_decref(r);
  return EXIT_OK;
}

int cmd_world_pause(adm *a) {
  return pause_resume(a, true);
}

int cmd_world_resume(adm *a) {
  return pause_resume(a, false);
}

int cmd_world_step(adm *a) {
  long long n = 1;
  int rc;
  if (a->n_pos && !adm_int_arg(a, "N", a->pos[0], 1, 100000, &n, &rc)) return rc;
  json_t *r;
  int to = a->timeout_s > 125 ? a->timeout_s : 125;
  rc = post(a, "/admin/world/step", json_pack("{s:I}", "ticks", (json_int_t)n), to, &r);
  if (rc) return rc;
  bool done = json_is_true(json_object_get(r, "done"));
  if (done) {
    if (a->json)
      adm_print_json(r);
    else {
      printf("stepped %lld tick%s: game time %lld\n", n, n == 1 ? "" : "s", ji(r, "game_time"));
      json_decref(r);
    }
    return EXIT_OK;
  }
  fprintf(stderr,
          "isoworld-admin: %s: at game time %lld of %lld when the server stopped waiting (the rest still run)\n",
          a->cmd_name, ji(r, "game_time"), ji(r, "target"));
  if (a->json) {
    json_object_set_new(r, "exit", json_integer(EXIT_REFUSED));
    adm_print_json(r);
  } else {
    json_decref(r);
  }
  return EXIT_REFUSED;
}

int cmd_world_tick_rate(adm *a) {
  long long n;
  int rc;
  if (!adm_int_arg(a, "MS", a->pos[0], 0, 3600000, &n, &rc)) return rc;
  json_t *r;
  rc = post(a, "/admin/world/tick-rate", json_pack("{s:I}", "ms", (json_int_t)n), 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  printf("tick rate %lld ms (was %lld ms)\n", ji(r, "tick_ms"), ji(r, "previous_ms"));
  json_decref(r);
  return EXIT_OK;
}

static int simple(adm *a, const char *route, json_t *body, const char *done_text) {
  json_t *r;
  int rc = post(a, route, body, 0, &r);
  if (rc) return rc;
  if (a->json)
    adm_print_json(r);
  else {
    printf("%s\n", done_text);
    json_decref(r);
  }
  return EXIT_OK;
}

/* --seed N of generate and reset into body (absent: the current world's seed). */
static bool seed_flag(adm *a, json_t *body, int *rc) {
  const char *s = adm_flag(a, "seed");
  if (!s) return true;
  long long seed;
  if (!adm_int_arg(a, "--seed", s, 0, LLONG_MAX, &seed, rc)) return false;
  json_object_set_new(body, "seed", json_integer((json_int_t)seed));
  return true;
}

/* The answer of generate and reset: the new world and where its players went. */
static int print_new_world(adm *a, json_t *r, const char *what) {
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  printf("%s: %lld room%s (%lldx%lld, seed %lld) at game time %lld\n", what, ji(r, "rooms"),
         ji(r, "rooms") == 1 ? "" : "s", ji(r, "width"), ji(r, "height"), ji(r, "seed"), ji(r, "game_time"));
  json_t *placed = json_object_get(r, "placed"), *unplaced = json_object_get(r, "unplaced");
  if (json_array_size(placed) + json_array_size(unplaced)) {
    adm_table t;
    adm_table_init(&t, 4, "ID", "USERNAME", "ROOM", "BEFORE");
    t.right[0] = true;
    size_t i;
    json_t *e;
    json_array_foreach(placed, i, e) adm_table_add(&t, js(e, "id"), js(e, "username"), js(e, "room"), js(e, "from"));
    json_array_foreach(unplaced, i, e) {
      char why[96];
      snprintf(why, sizeof why, "- (%s)", js(e, "reason"));
      adm_table_add(&t, js(e, "id"), js(e, "username"), why, js(e, "from"));
    }
    adm_table_print(a, &t);
    adm_table_release(&t);
  } else {
    printf("no player had a room\n");
  }
  if (json_array_size(unplaced))
    fprintf(stderr, "isoworld-admin: %s%zu player%s could not be placed (no free room): place them with player "
            "place-spawn, or generate a bigger world%s\n",
            adm_c(a, true, "yellow"), json_array_size(unplaced), json_array_size(unplaced) == 1 ? "" : "s",
            adm_c(a, true, "reset"));
  json_decref(r);
  return EXIT_OK;
}

int cmd_world_generate(adm *a) {
  long long n;
  int rc;
  if (!adm_int_arg(a, "ROOMS", a->pos[0], 1, 64 * 64, &n, &rc)) return rc;
  json_t *body = json_pack("{s:I}", "rooms", (json_int_t)n);
  if (!seed_flag(a, body, &rc)) {
    json_decref(body);
    return rc;
  }
  long long side = 1;
  while (side * side < n) side++;
  if (!adm_confirm(a, &rc,
                   "Replace the world with a new one of %lld rooms (%lldx%lld)? Every room and object is lost; "
                   "players who had a room get a new one.",
                   side * side, side, side)) {
    json_decref(body);
    return rc;
  }
  json_t *r;
  rc = post(a, "/admin/world/generate", body, a->timeout_s > 300 ? a->timeout_s : 300, &r);
  return rc ? rc : print_new_world(a, r, "world generated");
}

int cmd_world_reset(adm *a) {
  int rc;
  json_t *body = json_object();
  if (!seed_flag(a, body, &rc)) {
    json_decref(body);
    return rc;
  }
  if (!adm_confirm(a, &rc,
                   "Reset the world to its generated state? Every room and object is lost; players who had a room "
                   "start over in a new one.")) {
    json_decref(body);
    return rc;
  }
  json_t *r;
  rc = post(a, "/admin/world/reset", body, a->timeout_s > 300 ? a->timeout_s : 300, &r);
  return rc ? rc : print_new_world(a, r, "world reset");
}

/* ------------------------------------------------------------------ player */

int cmd_player_stats(adm *a) {
  json_t *r;
  int rc = get_user(a, "/admin/player/stats", a->pos[0], &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  json_t *p = json_object_get(r, "player"), *c = json_object_get(p, "cpu"), *m = json_object_get(p, "memory"),
         *s = json_object_get(p, "segments"), *code = json_object_get(p, "code");
  const char *b = adm_c(a, false, "bold"), *x = adm_c(a, false, "reset");
  char mem[32], sb[32], cb[32];
  adm_bytes((uint64_t)ji(m, "bytes"), mem, sizeof mem);
  adm_bytes((uint64_t)ji(s, "bytes"), sb, sizeof sb);
  adm_bytes((uint64_t)ji(code, "bytes"), cb, sizeof cb);
  printf("%splayer%s       %s (id %s)%s\n", b, x, js(p, "username"), js(p, "id"),
         json_is_true(json_object_get(p, "banned")) ? " BANNED" : "");
  printf("%scpu%s          limit %lld ms, bucket %lld, used %lld ms at tick %lld%s\n", b, x, ji(c, "limit"),
         ji(c, "bucket"), ji(c, "last_used_ms"), ji(c, "last_tick"),
         json_is_true(json_object_get(c, "ran_last_tick")) ? " (the last tick)" : "");
  printf("%scode%s         branch %s: %lld modules, %s\n", b, x, js(p, "branch"), ji(code, "modules"), cb);
  printf("%smemory%s       %s\n", b, x, mem);
  printf("%ssegments%s     %lld (%s), %zu active\n", b, x, ji(s, "count"), sb,
         json_array_size(json_object_get(s, "active")));
  printf("%sgame time%s    %lld\n", b, x, ji(p, "game_time"));
  json_decref(r);
  return EXIT_OK;
}

int cmd_player_reset_global(adm *a) {
  int rc;
  if (!adm_confirm(a, &rc, "Reset the global of %s (their isolate starts over next tick)?", a->pos[0])) return rc;
  json_t *r;
  rc = post(a, "/admin/player/reset-global", json_pack("{s:s}", "user", a->pos[0]), 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  printf("%s: a fresh global from tick %lld\n", js(r, "username"), ji(r, "from_tick"));
  json_decref(r);
  return EXIT_OK;
}

static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

int cmd_player_console(adm *a) {
  bool follow = adm_has(a, "follow");
  char enc[256];
  url_encode(a->pos[0], enc, sizeof enc);
  struct sigaction sa = {0};
  sa.sa_handler = on_sigint; /* no SA_RESTART: a poll in progress returns */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  char after[32] = "";
  json_t *all = a->json && !follow ? json_array() : NULL;
  const char *dim = adm_c(a, false, "dim"), *x = adm_c(a, false, "reset");
  for (;;) {
    char path[512];
    snprintf(path, sizeof path, "/admin/player/console?user=%s&wait=20000%s%s", enc, after[0] ? "&after=" : "", after);
    json_t *r;
    int rc = adm_call(a, "GET", path, NULL, 40, &r);
    if (interrupted) {
      json_decref(r);
      json_decref(all);
      return EXIT_OK;
    }
    if (rc) {
      json_decref(all);
      return rc;
    }
    snprintf(after, sizeof after, "%lld", ji(r, "next"));
    json_t *lines = json_object_get(r, "lines");
    if (ji(r, "dropped") && !a->json)
      fprintf(stderr, "isoworld-admin: %lld lines were dropped (the server keeps a bounded buffer)\n",
              ji(r, "dropped"));
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l) {
      if (a->json) {
        if (all)
          json_array_append(all, l);
        else {
          char *s = json_dumps(l, JSON_COMPACT | JSON_ENSURE_ASCII);
          if (s) puts(s); /* one JSON document per line while following */
          free(s);
        }
        continue;
      }
      const char *lv = js(l, "level");
      const char *col = !strcmp(lv, "error")    ? adm_c(a, false, "red")
                        : !strcmp(lv, "warn")   ? adm_c(a, false, "yellow")
                        : !strcmp(lv, "result") ? adm_c(a, false, "cyan")
                                                : "";
      printf("%s[%lld]%s %s%s%s%s\n", dim, ji(l, "tick"), x, col, !strcmp(lv, "result") ? "=> " : "", js(l, "text"),
             *col ? x : "");
    }
    fflush(stdout);
    bool got = json_array_size(lines) > 0;
    json_decref(r);
    if (!follow && got) break;
    if (!follow && !got) {
      json_decref(all);
      return adm_fail(a, EXIT_REFUSED, "%s: no console output from %s within 20 s (is their code running?)",
                      a->cmd_name, a->pos[0]);
    }
  }
  if (all) adm_print_json(json_pack("{s:i, s:s, s:o}", "ok", 1, "user", a->pos[0], "lines", all));
  return EXIT_OK;
}

int cmd_player_respawn(adm *a) {
  int rc;
  if (!adm_confirm(a, &rc, "Respawn %s (every room and object of theirs is removed; they start over in a free room)?",
                   a->pos[0]))
    return rc;
  json_t *r;
  rc = post(a, "/admin/player/respawn", json_pack("{s:s}", "user", a->pos[0]), 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  json_t *prev = json_object_get(r, "previous_rooms");
  char was[256] = "";
  size_t i;
  json_t *e;
  json_array_foreach(prev, i, e) {
    size_t l = strlen(was);
    snprintf(was + l, sizeof was - l, "%s%s", i ? ", " : "", json_string_value(e) ? json_string_value(e) : "?");
  }
  printf("%s respawned in %s (%s%s); a fresh global from tick %lld\n", js(r, "username"), js(r, "room"),
         was[0] ? "had " : "had no room", was, ji(r, "from_tick"));
  json_decref(r);
  return EXIT_OK;
}

/* Screeps room names: W|E digits N|S digits. */
static bool room_name_ok(const char *r) {
  size_t n = strlen(r);
  const char *p = r;
  if (n >= 16 || (*p != 'W' && *p != 'E')) return false;
  size_t d = strspn(++p, "0123456789");
  if (!d || (p[d] != 'N' && p[d] != 'S')) return false;
  p += d + 1;
  d = strspn(p, "0123456789");
  return d && !p[d];
}

int cmd_player_place_spawn(adm *a) {
  long long x, y;
  int rc;
  if (!room_name_ok(a->pos[1]))
    return adm_fail(a, EXIT_USAGE, "%s: '%s' is not a room name (like W1N1 or E2S3)", a->cmd_name, a->pos[1]);
  if (!adm_int_arg(a, "X", a->pos[2], 1, 48, &x, &rc) || !adm_int_arg(a, "Y", a->pos[3], 1, 48, &y, &rc)) return rc;
  json_t *body =
      json_pack("{s:s, s:s, s:I, s:I}", "user", a->pos[0], "room", a->pos[1], "x", (json_int_t)x, "y", (json_int_t)y);
  const char *name = adm_flag(a, "name");
  if (name) {
    if (!*name || strlen(name) > 100) {
      json_decref(body);
      return adm_fail(a, EXIT_USAGE, "%s: --name must be 1 to 100 bytes", a->cmd_name);
    }
    json_t *j = json_string(name);
    if (!j) {
      json_decref(body);
      return adm_fail(a, EXIT_USAGE, "%s: --name must be UTF-8 text", a->cmd_name);
    }
    json_object_set_new(body, "name", j);
  }
  json_t *r;
  rc = post(a, "/admin/player/place-spawn", body, 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  printf("%s placed: %s at %s %lld,%lld\n", js(r, "username"), js(r, "spawn"), js(r, "room"), ji(r, "x"), ji(r, "y"));
  json_decref(r);
  return EXIT_OK;
}

/* ------------------------------------------------------------------ backup, broadcast, log */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int cmd_backup(adm *a) {
  char path[PATH_MAX];
  const char *f = a->pos[0];
  if (!*f) return adm_fail(a, EXIT_USAGE, "backup: FILE is empty");
  if (f[0] == '/') {
    snprintf(path, sizeof path, "%s", f);
  } else {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return adm_fail(a, EXIT_REFUSED, "backup: cannot tell the current directory");
    if ((size_t)snprintf(path, sizeof path, "%.*s/%s", (int)(sizeof cwd - 1), cwd, f) >= sizeof path)
      return adm_fail(a, EXIT_USAGE, "backup: the path is too long");
  }
  json_t *r;
  int rc = post(a, "/admin/backup",
                json_pack("{s:s, s:b, s:b}", "path", path, "compact", !adm_has(a, "no-compact"), "overwrite",
                          adm_has(a, "force")),
                0, &r);
  if (rc) return rc;
  long long id = ji(json_object_get(r, "backup"), "id");
  json_decref(r);
  for (;;) {
    sleep_ms(100);
    rc = adm_call(a, "GET", "/admin/backup", NULL, 0, &r);
    if (rc) return rc;
    json_t *b = json_object_get(r, "backup");
    const char *phase = js(b, "phase");
    if (ji(b, "id") != id) {
      json_decref(r);
      return adm_fail(a, EXIT_REFUSED, "backup: the server lost track of backup %lld (restarted?)", id);
    }
    bool end = !strcmp(phase, "done") || !strcmp(phase, "failed");
    adm_progress(a, !strcmp(phase, "verifying") ? "verify" : "backup", (uint64_t)ji(b, "bytes"),
                 (uint64_t)ji(b, "total"), end && !strcmp(phase, "done"));
    if (!end) {
      json_decref(r);
      continue;
    }
    if (!strcmp(phase, "failed")) {
      if (isatty(2) && !a->json) fputc('\n', stderr);
      rc = adm_fail(a, EXIT_REFUSED, "backup: %s", js(b, "error"));
      json_decref(r);
      return rc;
    }
    if (a->json) {
      adm_print_json(r);
      return EXIT_OK;
    }
    char size[32];
    adm_bytes((uint64_t)ji(b, "bytes"), size, sizeof size);
    printf("backup of game time %lld written to %s (%s in %.1f s)\nstate hash %s\n", ji(b, "game_time"), js(b, "path"),
           size, json_real_value(json_object_get(b, "elapsed_s")), js(b, "state_hash"));
    json_decref(r);
    return EXIT_OK;
  }
}

int cmd_broadcast(adm *a) {
  if (!a->pos[0][0]) return adm_fail(a, EXIT_USAGE, "broadcast: TEXT is empty");
  return simple(a, "/admin/broadcast", json_pack("{s:s}", "text", a->pos[0]), "sent");
}

int cmd_log(adm *a) {
  long long n = 20;
  int rc;
  if (adm_flag(a, "limit") && !adm_int_arg(a, "--limit", adm_flag(a, "limit"), 1, 10000, &n, &rc)) return rc;
  char path[64];
  snprintf(path, sizeof path, "/admin/log?limit=%lld", n);
  json_t *r;
  rc = adm_call(a, "GET", path, NULL, 0, &r);
  if (rc) return rc;
  if (a->json) {
    adm_print_json(r);
    return EXIT_OK;
  }
  adm_table t;
  adm_table_init(&t, 4, "#", "WHEN", "WHO", "WHAT");
  t.right[0] = true;
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(r, "entries"), i, e) {
    char seq[24], when[32];
    snprintf(seq, sizeof seq, "%lld", ji(e, "seq"));
    time_t tt = (time_t)(ji(e, "time_ms") / 1000);
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    adm_table_add(&t, seq, when, js(e, "who"), js(e, "what"));
  }
  adm_table_print(a, &t);
  adm_table_release(&t);
  json_decref(r);
  return EXIT_OK;
}
