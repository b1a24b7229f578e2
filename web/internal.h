/*
 * internal.h — what web.c (HTTP, lifecycle) and ws.c (the websocket protocol) share.
 * Only the .c files of web/ include it; with web.c it is all that sees libwebsockets.
 */
#ifndef ISOWORLD_WEB_INTERNAL_H
#define ISOWORLD_WEB_INTERNAL_H

#include <libwebsockets.h>

#include "web.h"

/* Name of our websocket protocol in lws' table (made the vhost default, so clients that
 * send no Sec-WebSocket-Protocol get it). */
#define WEB__WS_PROTOCOL "isoworld"

typedef struct web__ws web__ws;

/* ---- ws.c, called by web.c ---- */

/* Creates the websocket state of w (no backend yet: see web_ws_setup) and registers the
 * SockJS info route. WEB_OK or WEB_ENOMEM. */
int web__ws_new(web *w, web__ws **out);
/* Drops every connection and subscription silently (no backend callback), frees ws. */
void web__ws_free(web__ws *ws);
/* The lws callback of the websocket protocol, and the size of its session data. */
int web__ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
size_t web__ws_pss_size(void);
/* Is `uri` (the request path) a websocket endpoint: web_options.ws_path, or a SockJS
 * session path beside it (/socket/<server>/<session>/websocket)? */
bool web__ws_path_ok(const web *w, const char *uri);

/* ---- web.c, called by ws.c ---- */

web__ws *web__get_ws(const web *w);
uv_loop_t *web__get_loop(const web *w);
const char *web__get_ws_path(const web *w);
/* True once web_free() started: lws callbacks must refuse new work. */
bool web__is_closing(const web *w);
/* Answers LWS_CALLBACK_HTTP_CONFIRM_UPGRADE (whichever protocol it arrives at). */
int web__confirm_upgrade(web *w, struct lws *wsi, const char *what);
void web__logf(const web *w, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* ISOWORLD_WEB_INTERNAL_H */
