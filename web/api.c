/*
 * api.c — the built-in game routes: /api/version, /api/game/time, /api/game/tick.
 *
 * Built only on web.h's public API (no libwebsockets here). The values come from the
 * server through web_backend; those functions run on the loop thread inside a request and
 * must be cheap. The JSON shapes are the Screeps private server's (PROTOCOL.md), which
 * existing clients parse.
 */
#include "web.h"

#include <stdlib.h>
#include <string.h>

typedef struct web__game_api {
  web_backend b;
  char *welcome_text;
  char *package_version;
  void *ud;
} web__game_api;

static void web__api_free(void *p) {
  web__game_api *api = p;
  free(api->welcome_text);
  free(api->package_version);
  free(api);
}

static void web__api_version(web_req *req, void *ud) {
  const web__game_api *api = ud;
  size_t users = api->b.user_count ? api->b.user_count(api->ud) : 0;
  json_t *body = json_pack("{s:i, s:i, s:b, s:I, s:{s:s, s:i, s:i, s:{}, s:{s:{}, s:{}}, s:[]}, s:s}", "ok", 1,
                           "protocol", 14, "useNativeAuth", 0, "users", (json_int_t)users, "serverData", "welcomeText",
                           api->welcome_text, "historyChunkSize", 20, "socketUpdateThrottle", 200, "customObjectTypes",
                           "renderer", "resources", "metadata", "features", "packageVersion", api->package_version);
  if (!body) {
    web_respond_error(req, 500, "internal error");
    return;
  }
  web_respond(req, 200, body);
}

static void web__api_time(web_req *req, void *ud) {
  const web__game_api *api = ud;
  uint64_t t = api->b.game_time ? api->b.game_time(api->ud) : 0;
  web_respond(req, 200, json_pack("{s:i, s:I}", "ok", 1, "time", (json_int_t)t));
}

static void web__api_tick(web_req *req, void *ud) {
  const web__game_api *api = ud;
  int64_t ms = api->b.tick_duration_ms ? api->b.tick_duration_ms(api->ud) : 0;
  web_respond(req, 200, json_pack("{s:i, s:I}", "ok", 1, "tick", (json_int_t)ms));
}

int web_install_game_api(web *w, const web_backend *backend, void *ud) {
  web__game_api *api;
  int rc;

  if (!w || !backend) return WEB_EINVAL;
  api = calloc(1, sizeof *api);
  if (!api) return WEB_ENOMEM;
  api->b = *backend;
  api->ud = ud;
  api->welcome_text = strdup(backend->welcome_text ? backend->welcome_text : "");
  api->package_version = strdup(backend->package_version ? backend->package_version : "");
  if (!api->welcome_text || !api->package_version) {
    web__api_free(api);
    return WEB_ENOMEM;
  }
  /* ownership first: once web holds it, routes may reference it */
  if ((rc = web_on_free(w, web__api_free, api))) {
    web__api_free(api);
    return rc;
  }
  /* a partial registration (a path already routed) keeps what it registered */
  if ((rc = web_route(w, "GET", "/api/version", web__api_version, api)) ||
      (rc = web_route(w, "GET", "/api/game/time", web__api_time, api)) ||
      (rc = web_route(w, "GET", "/api/game/tick", web__api_tick, api)))
    return rc;
  return WEB_OK;
}
