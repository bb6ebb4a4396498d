/*
 * listen.c - see listen.h. One lws context, one client connection per
 * tenant; the callback adds the token to the upgrade request, sends the
 * subscribe frame once the connection is writable, and reassembles each
 * text message (libs/wsc: bounded at 64 KiB, the protocol's cap) before
 * reading its "op".
 */
#include "tools/bots/listen.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/wsc/wsc.h"

typedef struct listener {
  struct listeners *all;
  const bot_tenant *t;
  struct lws *wsi;
  bool sent;
  atomic_bool subscribed, failed;
  wsc_msg msg;
} listener;

struct listeners {
  struct lws_context *ctx;
  pthread_t thread;
  atomic_bool stop;
  atomic_long deliveries, others, dropped;
  int n;
  listener *ls;
};

static void on_message(listener *l) {
  json_t *j = json_loadb(l->msg.buf, l->msg.len, 0, NULL);
  const char *op = json_string_value(json_object_get(j, "op"));
  if (op != NULL && strcmp(op, "pub") == 0) {
    const char *type =
        json_string_value(json_object_get(json_object_get(j, "event"), "type"));
    if (type != NULL && strncmp(type, "Order", 5) == 0)
      atomic_fetch_add(&l->all->deliveries, 1);
    else
      atomic_fetch_add(&l->all->others, 1);
  } else if (op != NULL && strcmp(op, "subscribed") == 0)
    atomic_store(&l->subscribed, true);
  else if (op != NULL && strcmp(op, "error") == 0)
    atomic_store(&l->failed, true);
  json_decref(j);
}

static int add_token(listener *l, void *in, size_t len) {
  unsigned char **p = in, *end = *p + len;
  char v[BOTS_TOKEN_MAX + 16];
  int n = snprintf(v, sizeof v, "Bearer %s", l->t->staff.token);
  int rc = lws_add_http_header_by_name(
      l->wsi, (const unsigned char *)"authorization:", (unsigned char *)v, n, p,
      end);
  explicit_bzero(v, sizeof v);
  return rc ? -1 : 0;
}

static int subscribe(listener *l, struct lws *wsi) {
  unsigned char buf[LWS_PRE + 128];
  int n = snprintf((char *)buf + LWS_PRE, 128,
                   "{\"op\":\"subscribe\",\"id\":1,\"channel\":\"orders.%s\"}",
                   l->t->id);
  l->sent = true;
  return lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n ? -1 : 0;
}

static void gone(listener *l) {
  if (atomic_load(&l->subscribed)) atomic_fetch_add(&l->all->dropped, 1);
  atomic_store(&l->failed, true);
  l->wsi = NULL;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len) {
  listener *l = user;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
    l->wsi = wsi;
    return add_token(l, in, len);
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    lws_callback_on_writable(wsi);
    return 0;
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    return l->sent ? 0 : subscribe(l, wsi);
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (wsc_msg_add(&l->msg, in, len, lws_is_final_fragment(wsi)))
      on_message(l);
    return 0;
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    fprintf(stderr, "bots: realtime: %s\n", in ? (const char *)in : "error");
    gone(l);
    return 0;
  case LWS_CALLBACK_CLIENT_CLOSED:
    gone(l);
    return 0;
  default:
    return 0;
  }
}

static const struct lws_protocols kProtocols[] = {
    {"bots", callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *serve(void *arg) {
  listeners *a = arg;
  while (!atomic_load(&a->stop)) lws_service(a->ctx, 0);
  return NULL;
}

static int connect_all(listeners *a, const char *host, int port,
                       const char *path) {
  for (int i = 0; i < a->n; i++) {
    struct lws_client_connect_info ci = {.context = a->ctx,
                                         .address = host,
                                         .port = port,
                                         .path = path,
                                         .host = host,
                                         .origin = host,
                                         .local_protocol_name = "bots",
                                         .userdata = &a->ls[i],
                                         .pwsi = &a->ls[i].wsi};
    if (lws_client_connect_via_info(&ci) == NULL) return -1;
  }
  return 0;
}

static bool all_subscribed(listeners *a, long timeout_ms) {
  int64_t end = time_mono_ns() + timeout_ms * 1000000;
  while (time_mono_ns() < end) {
    int ok = 0;
    for (int i = 0; i < a->n; i++) {
      if (atomic_load(&a->ls[i].failed)) return false;
      ok += atomic_load(&a->ls[i].subscribed);
    }
    if (ok == a->n) return true;
    time_sleep_ms(20);
  }
  return false;
}

listeners *listeners_start(const bots_world *w, const char *url,
                           long timeout_ms) {
  char host[256], path[256];
  int port;
  if (wsc_parse_url(url, host, sizeof host, &port, path, sizeof path,
                    "/v1/realtime") != 0)
    return NULL;
  listeners *a = calloc(1, sizeof *a);
  if (a == NULL ||
      (a->ls = calloc((size_t)w->ntenants, sizeof *a->ls)) == NULL) {
    free(a);
    return NULL;
  }
  a->n = w->ntenants;
  for (int i = 0; i < a->n; i++)
    a->ls[i] = (listener){.all = a, .t = &w->tenants[i]};
  lws_set_log_level(LLL_ERR, NULL);
  struct lws_context_creation_info info = {.port = CONTEXT_PORT_NO_LISTEN,
                                           .protocols = kProtocols};
  a->ctx = lws_create_context(&info);
  bool ok = a->ctx != NULL && connect_all(a, host, port, path) == 0 &&
            pthread_create(&a->thread, NULL, serve, a) == 0;
  if (ok && !all_subscribed(a, timeout_ms)) {
    fprintf(stderr, "bots: realtime: not every listener subscribed\n");
    listeners_stop(a);
    return NULL;
  }
  if (!ok) {
    if (a->ctx) lws_context_destroy(a->ctx);
    free(a->ls);
    free(a);
    return NULL;
  }
  return a;
}

long listeners_deliveries(const listeners *l) {
  return atomic_load(&((listeners *)l)->deliveries);
}

long listeners_others(const listeners *l) {
  return atomic_load(&((listeners *)l)->others);
}

long listeners_dropped(const listeners *l) {
  return atomic_load(&((listeners *)l)->dropped);
}

long listeners_settle(listeners *l, long expected, long quiet_ms, long max_ms) {
  int64_t end = time_mono_ns() + max_ms * 1000000, quiet_since = time_mono_ns();
  long last = listeners_deliveries(l);
  while (last < expected && time_mono_ns() < end &&
         time_mono_ns() - quiet_since < quiet_ms * 1000000) {
    time_sleep_ms(20);
    long now = listeners_deliveries(l);
    if (now != last) quiet_since = time_mono_ns();
    last = now;
  }
  return last;
}

void listeners_stop(listeners *l) {
  if (l == NULL) return;
  atomic_store(&l->stop, true);
  lws_cancel_service(l->ctx);
  pthread_join(l->thread, NULL);
  lws_context_destroy(l->ctx);
  free(l->ls);
  free(l);
}
