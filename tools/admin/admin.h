/*
 * admin.h — what the files of isoworld-admin share.
 *
 *   main.c     arguments, help, dispatch, output (tables, colour, --json, errors)
 *   http.c     a tiny HTTP/1.1 client for the admin API
 *   online.c   the commands that talk to a running server
 *   offline.c  verify and restore, which work on files with no server
 *
 * Exit codes (EXIT_*): 0 ok, 1 refused (by the server, or by the tool: a failed check, a
 * missing confirmation's consequence), 2 bad usage (unknown command or option, bad
 * argument), 3 server unreachable.
 */
#ifndef ISOWORLD_TOOLS_ADMIN_H
#define ISOWORLD_TOOLS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

/* ---- http.c */
typedef struct http_resp {
  int status;
  char *body; /* NUL-terminated */
  size_t len;
} http_resp;

/* Splits http://HOST[:PORT][/...] (HOST may be [v6]). 0 or -1. */
int http_parse_url(const char *url, char *host, size_t hcap, char *port, size_t pcap);
/* One request; headers are "Name: value" lines (NULL-terminated list, may be NULL); body
 * (may be NULL) is sent as JSON. 0 when an answer came (any status; release it), -1 on a
 * transport failure (message in err). */
int http_request(const char *url, const char *method, const char *path, const char *const *headers, const char *body,
                 int timeout_ms, http_resp *out, char *err, size_t errcap);
void http_resp_release(http_resp *r);

/* ---- the invocation */
#define ADM_MAX_POS 16
#define ADM_MAX_FLAGS 32

typedef struct adm {
  /* global options */
  const char *data_dir;
  const char *url;
  const char *token;
  const char *token_file;
  const char *as;
  int timeout_s;
  bool json, yes, help;
  bool color_out, color_err; /* decided from --color and the terminals */
  /* the command's own flags and positional arguments */
  const char *flag_name[ADM_MAX_FLAGS];
  const char *flag_value[ADM_MAX_FLAGS]; /* NULL for a switch */
  int n_flags;
  const char *pos[ADM_MAX_POS];
  int n_pos;
  /* resolved server */
  char url_buf[512];
  char token_buf[256];
  const char *cmd_name; /* "users ban", for messages */
} adm;

/* The value of command flag `name` (NULL if absent); adm_has: given at all. */
const char *adm_flag(const adm *a, const char *name);
bool adm_has(const adm *a, const char *name);

/* ---- output (main.c) */
/* Prints "isoworld-admin: <msg>" on stderr (and, with --json, {"ok":0,"error","exit"} on
 * stdout); returns code. */
int adm_fail(adm *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prints a JSON document on stdout (with --json). Steals j. */
void adm_print_json(json_t *j);
/* Human note on stderr (not with --json). */
void adm_note(adm *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Asks "<question> [y/N]" on the terminal; true for yes. Without a terminal: false, after
 * an error that says --yes is needed (returns through *code). With --yes: true. */
bool adm_confirm(adm *a, int *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ANSI styles, empty strings when colour is off for that stream. */
const char *adm_c(const adm *a, bool err, const char *style); /* "bold", "dim", "red", "green", "yellow", "reset" */

/* Tables: rows of cells, printed with aligned columns. */
typedef struct adm_table {
  int cols;
  char **cells; /* rows * cols, owned */
  int rows, cap;
  bool right[16]; /* right-align column */
} adm_table;
void adm_table_init(adm_table *t, int cols, ...); /* header cells */
void adm_table_add(adm_table *t, ...);            /* cols strings (copied; NULL: "") */
void adm_table_print(const adm *a, adm_table *t);
void adm_table_release(adm_table *t);

/* Human sizes and times. */
void adm_bytes(uint64_t n, char *out, size_t cap);
void adm_time_ms(int64_t ms, char *out, size_t cap); /* local date and time, "-" for 0 */

/* ---- the server (online.c) */
/* Finds the URL and token (flags, environment, --data-dir's admin.json/admin.token).
 * EXIT_OK or an exit code (message printed). */
int adm_resolve(adm *a);
/* Calls the API. body stolen (NULL: GET without body). On HTTP 200 {"ok":1}: EXIT_OK with
 * *out the answer (caller decrefs). Otherwise prints the error and returns its exit code. */
int adm_call(adm *a, const char *method, const char *path, json_t *body, int timeout_s, json_t **out);

/* ---- commands */
typedef int (*adm_run_fn)(adm *a);
int cmd_users_list(adm *a);
int cmd_users_show(adm *a);
int cmd_users_create(adm *a);
int cmd_users_ban(adm *a);
int cmd_users_unban(adm *a);
int cmd_users_set_cpu(adm *a);
int cmd_users_reset_password(adm *a);
int cmd_users_issue_token(adm *a);
int cmd_users_revoke_token(adm *a);
int cmd_world_status(adm *a);
int cmd_world_pause(adm *a);
int cmd_world_resume(adm *a);
int cmd_world_step(adm *a);
int cmd_world_tick_rate(adm *a);
int cmd_world_generate(adm *a);
int cmd_world_reset(adm *a);
int cmd_player_stats(adm *a);
int cmd_player_reset_global(adm *a);
int cmd_player_console(adm *a);
int cmd_player_respawn(adm *a);
int cmd_player_place_spawn(adm *a);
int cmd_backup(adm *a);
int cmd_broadcast(adm *a);
int cmd_log(adm *a);
int cmd_verify(adm *a);
int cmd_restore(adm *a);

/* Parses a whole number in lo..hi; false (after a usage error) otherwise. */
bool adm_int_arg(adm *a, const char *what, const char *s, long long lo, long long hi, long long *out, int *code);
/* A progress bar on stderr when it is a terminal: label, done of total bytes. */
void adm_progress(adm *a, const char *label, uint64_t done, uint64_t total, bool final);

#endif
