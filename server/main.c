/*
 * main.c — isoworld: configuration, start-up in order, the libuv loop, shutdown.
 *
 * Start-up: V8 (flags once), the data directory (schema checked; demo players seeded
 * into a new one), the HTTP server on this thread's libuv loop with the player API and
 * the op queue that carries its changes to the tick thread, then the tick thread.
 * SIGINT/SIGTERM stop the tick thread after the tick in progress is committed; a
 * second signal exits at once (LMDB keeps the last committed tick either way).
 */
#include "server.h"
#include "web.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

typedef struct app {
  srv s;
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  uv_async_t tick_exited;
  web *http;
  int signals;
} app;

static uint64_t be_game_time(void *ud) {
  return atomic_load(&((srv *)ud)->pub_game_time);
}
static size_t be_users(void *ud) {
  return atomic_load(&((srv *)ud)->pub_users);
}
static int64_t be_tick_ms(void *ud) {
  return atomic_load(&((srv *)ud)->pub_tick_ms); /* admins may change it */
}

static void web_log(void *ud, int level, const char *message) {
  (void)ud;
  srv_log("http: %s%s", level == WEB_LOG_ERROR ? "error: " : level == WEB_LOG_WARN ? "warning: " : "", message);
}

/*
 * The browser page: --static-dir (or $ISOWORLD_STATIC_DIR), else share/isoworld/client
 * beside the binary's bin/ — where the build puts it (build/bin/isoworld,
 * build/share/isoworld/client) and where an install would. NULL: no page.
 */
static const char *find_static_dir(const srv_config *cfg, char *buf, size_t cap) {
  const char *env = getenv("ISOWORLD_STATIC_DIR");
  struct stat st;
  if (!strcmp(cfg->static_dir, "none")) return NULL;
  if (cfg->static_dir[0]) {
    snprintf(buf, cap, "%s", cfg->static_dir);
    return buf;
  }
  if (env && *env) {
    snprintf(buf, cap, "%s", env);
    return buf;
  }
  char exe[1024];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return NULL;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash) return NULL;
  *slash = '\0';
  snprintf(buf, cap, "%s/../share/isoworld/client", exe);
  if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
    srv_log("no browser page: %s is missing (build the 'client' target, or give --static-dir)", buf);
    return NULL;
  }
  return buf;
}

static void shutdown_loop(app *a) {
  /* The tick thread has stopped: ops still queued are answered now, then the handle closes. */
  srv_ops_close(&a->s);
  srv_admin_shutdown(&a->s);
  uv_signal_stop(&a->sigint);
  uv_signal_stop(&a->sigterm);
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->tick_exited, NULL);
  web_free(a->http);
  a->http = NULL;
  srv_publish_close(&a->s);
}

static void on_signal(uv_signal_t *h, int signum) {
  app *a = h->data;
  if (++a->signals > 1) {
    srv_log("second signal: exiting now (the last committed tick is safe on disk)");
    _exit(130);
  }
  srv_log("%s: finishing the tick in progress, then stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
  srv_stop_ticking(&a->s);
  shutdown_loop(a);
}

/* The tick thread stopped by itself (--max-ticks, or a commit failed). */
static void on_tick_exited(uv_async_t *h) {
  app *a = h->data;
  if (a->signals) return; /* on_signal handles it */
  a->signals = 1;
  pthread_join(a->s.tick_thread, NULL);
  shutdown_loop(a);
}

static void notify_tick_exit(void *ud) {
  uv_async_send(&((app *)ud)->tick_exited);
}

int main(int argc, char **argv) {
  static app a;
  int rc = srv_config_load(&a.s.cfg, argc, argv);
  if (rc != 0) return rc > 0 ? 0 : 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);

  if (sbx_engine_start(NULL) != SBX_OK) {
    srv_log("V8 failed to start");
    return 1;
  }
  if (srv_admin_lock_data_dir(&a.s) != 0) return 1;
  if (srv_open(&a.s) != 0) {
    srv_close(&a.s);
    return 1;
  }
  uv_loop_init(&a.loop);
  web_options wo;
  web_options_init(&wo);
  wo.bind_addr = a.s.cfg.bind;
  wo.port = a.s.cfg.port;
  wo.log = web_log;
  char static_dir[1200];
  wo.static_dir = find_static_dir(&a.s.cfg, static_dir, sizeof static_dir);
  if ((rc = web_new(&a.loop, &wo, &a.http)) != 0) {
    srv_log("cannot serve HTTP on %s:%d: %s", a.s.cfg.bind, a.s.cfg.port, web_strerror(rc));
    srv_close(&a.s);
    uv_loop_close(&a.loop);
    return 1;
  }
  web_backend be = {.game_time = be_game_time,
                    .user_count = be_users,
                    .tick_duration_ms = be_tick_ms,
                    .welcome_text = "isoworld: a Screeps-style server in C with V8 isolates",
                    .package_version = ISOWORLD_VERSION};
  web_install_game_api(a.http, &be, &a.s);
  web_ws_options wso = {.queue_max_bytes = (size_t)a.s.cfg.ws_queue_kb * 1024,
                        .stall_close_ms = (unsigned)a.s.cfg.ws_stall_s * 1000u};
  if ((rc = srv_ops_init(&a.s, &a.loop)) != 0 || (rc = srv_api_install(&a.s, a.http, &a.loop)) != 0 ||
      (rc = srv_publish_init(&a.s, &a.loop, a.http, &wso)) != 0) {
    srv_log("cannot set up the player API: %d", rc);
    web_free(a.http);
    /* close what did start, or the loop below would wait on its handles for ever */
    srv_publish_close(&a.s);
    srv_ops_close(&a.s);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    srv_close(&a.s);
    return 1;
  }

  uv_signal_init(&a.loop, &a.sigint);
  uv_signal_init(&a.loop, &a.sigterm);
  a.sigint.data = a.sigterm.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  uv_async_init(&a.loop, &a.tick_exited, on_tick_exited);
  a.tick_exited.data = &a;
  a.s.on_tick_thread_exit = notify_tick_exit;
  a.s.on_exit_ud = &a;

  /* The admin API first: once the line below announces the server, admin.json is there. */
  if (srv_admin_start(&a.s, &a.loop) != 0) {
    shutdown_loop(&a);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    srv_admin_close(&a.s);
    srv_close(&a.s);
    return 1;
  }
  srv_log("isoworld %s (V8 %s): data %s, game time %" PRIu64 ", %zu players, tick %d ms, http://%s:%d/",
          ISOWORLD_VERSION, sbx_engine_version(), a.s.cfg.data_dir, a.s.game_time, a.s.n_players, a.s.cfg.tick_ms,
          a.s.cfg.bind, web_port(a.http));
  if (srv_start_ticking(&a.s) != 0) {
    shutdown_loop(&a);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    srv_admin_close(&a.s);
    srv_close(&a.s);
    return 1;
  }
  uv_run(&a.loop, UV_RUN_DEFAULT);
  uv_loop_close(&a.loop);
  int code = a.s.exit_code;
  srv_log("stopped at game time %" PRIu64, a.s.game_time);
  srv_admin_close(&a.s);
  srv_close(&a.s);
  if (!sbx_engine_stop())
    srv_log("%d player threads are still stuck in V8 builtins; exiting without stopping V8",
            sbx_engine_stuck_threads());
  return code;
}
