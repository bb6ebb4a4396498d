/*
 * rt.c - see rt.h. One lws context with one client connection, all its
 * state touched only on the lws thread except `token` (mutex) and the
 * flags (atomics). The loop's rt_token() wakes the thread with
 * lws_cancel_service; the thread then asks for a writable callback and
 * sends `refresh` there. Frames are sent one per writable callback, in
 * order: auth, subscribe orders, subscribe tables, then refreshes.
 * Incoming messages are reassembled up to 64 KiB (the protocol's cap;
 * libs/wsc); only `op` and the `ready` frame's tenant_id are read.
 */
#include "clients/syncd/rt.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/syncd/clock.h"
#include "libs/wsc/wsc.h"

#define TOKEN_MAX 1024

enum { ST_IDLE, ST_OPEN, ST_READY };

struct rt {
  struct lws_context *ctx;
  pthread_t thread;
  atomic_bool stop, poked, live;
  char host[256], path[256];
  int port;
  int64_t base_ms, max_ms;
  pthread_mutex_t mu;
  char token[TOKEN_MAX]; /* under mu */
  unsigned gen;          /* under mu: bumped when token changes */
  /* The lws thread's own. */
  struct lws *wsi;
  lws_sorted_usec_list_t sul;
  int state, failures, subs_sent;
  unsigned sent_gen;
  bool auth_sent;
  char tenant[40];
  wsc_msg msg;
};

static uint32_t rnd(uint32_t n) { return randombytes_uniform(n); }

static void connect_now(lws_sorted_usec_list_t *sul);

static void retry_later(rt *r, int64_t ms) {
  lws_sul_schedule(r->ctx, 0, &r->sul, connect_now, ms * LWS_US_PER_MS);
}

static void lost(rt *r) {
  if (r->state == ST_READY && !atomic_load(&r->stop))
    fprintf(stderr, "syncd: realtime lost\n");
  r->wsi = NULL;
  r->state = ST_IDLE;
  atomic_store(&r->live, false);
  if (!atomic_load(&r->stop))
    retry_later(r, backoff_ms(++r->failures, r->base_ms, r->max_ms, rnd));
}

static void connect_now(lws_sorted_usec_list_t *sul) {
  rt *r = lws_container_of(sul, rt, sul);
  pthread_mutex_lock(&r->mu);
  bool have = r->token[0] != '\0';
  pthread_mutex_unlock(&r->mu);
  if (!have) {
    retry_later(r, 500); /* the loop has not opened a session yet */
    return;
  }
  r->state = ST_OPEN;
  r->auth_sent = false;
  r->subs_sent = 0;
  wsc_msg_reset(&r->msg);
  struct lws_client_connect_info ci = {.context = r->ctx,
                                       .address = r->host,
                                       .port = r->port,
                                       .path = r->path,
                                       .host = r->host,
                                       .origin = r->host,
                                       .local_protocol_name = "syncd",
                                       .pwsi = &r->wsi};
  if (lws_client_connect_via_info(&ci) == NULL) lost(r);
}

/* Sends `{"op":op,...,"token":T}` with the current token; the buffer is
 * wiped after (it held the token). */
static int send_token(rt *r, struct lws *wsi, const char *op, int id) {
  unsigned char buf[LWS_PRE + TOKEN_MAX + 96];
  char *p = (char *)buf + LWS_PRE;
  pthread_mutex_lock(&r->mu);
  int n =
      snprintf(p, TOKEN_MAX + 96, "{\"op\":\"%s\",\"id\":%d,\"token\":\"%s\"}",
               op, id, r->token);
  r->sent_gen = r->gen;
  pthread_mutex_unlock(&r->mu);
  int w = lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT);
  sodium_memzero(buf, sizeof buf);
  return w < n ? -1 : 0;
}

static int send_subscribe(rt *r, struct lws *wsi, const char *kind) {
  unsigned char buf[LWS_PRE + 160];
  int n = snprintf((char *)buf + LWS_PRE, 160,
                   "{\"op\":\"subscribe\",\"id\":%d,\"channel\":\"%s.%s\"}",
                   10 + r->subs_sent, kind, r->tenant);
  r->subs_sent++;
  return lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n ? -1 : 0;
}

static bool token_changed(rt *r) {
  pthread_mutex_lock(&r->mu);
  bool ch = r->gen != r->sent_gen && r->token[0] != '\0';
  pthread_mutex_unlock(&r->mu);
  return ch;
}

/* The next frame due, one per writable callback. */
static int on_writable(rt *r, struct lws *wsi) {
  int rc = 0;
  if (!r->auth_sent) {
    r->auth_sent = true;
    return send_token(r, wsi, "auth", 1);
  }
  if (r->state != ST_READY) return 0;
  if (r->subs_sent == 0)
    rc = send_subscribe(r, wsi, "orders");
  else if (r->subs_sent == 1)
    rc = send_subscribe(r, wsi, "tables");
  else if (token_changed(r))
    rc = send_token(r, wsi, "refresh", 2);
  if (rc == 0 && (r->subs_sent < 2 || token_changed(r)))
    lws_callback_on_writable(wsi);
  return rc;
}

/* A canonical lower-case UUID (what realtime accepts in a channel). */
static bool uuid_ok(const char *s) {
  if (s == NULL || strlen(s) != 36) return false;
  for (int i = 0; i < 36; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : strchr("0123456789abcdef", s[i]) == NULL)
      return false;
  }
  return true;
}

static void on_message(rt *r, struct lws *wsi) {
  json_t *j = json_loadb(r->msg.buf, r->msg.len, 0, NULL);
  const char *op = json_string_value(json_object_get(j, "op"));
  if (op == NULL) {
  } else if (strcmp(op, "pub") == 0) {
    atomic_store(&r->poked, true);
  } else if (strcmp(op, "ready") == 0) {
    const char *tid = json_string_value(json_object_get(j, "tenant_id"));
    if (uuid_ok(tid)) {
      snprintf(r->tenant, sizeof r->tenant, "%s", tid);
      r->state = ST_READY;
      lws_callback_on_writable(wsi);
    }
  } else if (strcmp(op, "subscribed") == 0) {
    /* Whatever happened while unsubscribed: one pull catches up. */
    atomic_store(&r->poked, true);
    if (r->subs_sent == 2 && !atomic_exchange(&r->live, true)) {
      r->failures = 0;
      fprintf(stderr, "syncd: realtime subscribed\n");
    }
  } else if (strcmp(op, "error") == 0) {
    const char *code = json_string_value(json_object_get(j, "code"));
    fprintf(stderr, "syncd: realtime refused: %.64s\n", code ? code : "?");
  }
  json_decref(j);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len) {
  (void)user;
  if (wsi == NULL) return 0;
  rt *r = lws_context_user(lws_get_context(wsi));
  if (r == NULL) return 0;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    lws_callback_on_writable(wsi);
    return 0;
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    return on_writable(r, wsi);
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (wsc_msg_add(&r->msg, in, len, lws_is_final_fragment(wsi)))
      on_message(r, wsi);
    return 0;
  case LWS_CALLBACK_EVENT_WAIT_CANCELLED: /* rt_token or rt_stop */
    if (r->wsi != NULL && r->state == ST_READY && token_changed(r))
      lws_callback_on_writable(r->wsi);
    return 0;
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    if (r->failures == 0)
      fprintf(stderr, "syncd: realtime: %.120s\n",
              in ? (const char *)in : "connection failed");
    lost(r);
    return 0;
  case LWS_CALLBACK_CLIENT_CLOSED:
    lost(r);
    return 0;
  default:
    return 0;
  }
}

static const struct lws_protocols kProtocols[] = {
    {"syncd", callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *serve(void *arg) {
  rt *r = arg;
  while (!atomic_load(&r->stop)) lws_service(r->ctx, 0);
  return NULL;
}

int rt_parse_url(const char *url, char *host, size_t hcap, int *port,
                 char *path, size_t pcap) {
  return wsc_parse_url(url, host, hcap, port, path, pcap, "/v1/realtime");
}

rt *rt_start(const char *url, int64_t backoff_base_ms, int64_t backoff_max_ms) {
  rt *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  if (rt_parse_url(url, r->host, sizeof r->host, &r->port, r->path,
                   sizeof r->path) != 0) {
    fputs("syncd: realtime URL must be ws://host:port[/path]\n", stderr);
    free(r);
    return NULL;
  }
  r->base_ms = backoff_base_ms;
  r->max_ms = backoff_max_ms;
  pthread_mutex_init(&r->mu, NULL);
  lws_set_log_level(LLL_ERR, NULL);
  struct lws_context_creation_info info = {
      .port = CONTEXT_PORT_NO_LISTEN, .protocols = kProtocols, .user = r};
  r->ctx = lws_create_context(&info);
  if (r->ctx != NULL) retry_later(r, 0);
  if (r->ctx == NULL || pthread_create(&r->thread, NULL, serve, r) != 0) {
    fputs("syncd: realtime: cannot start libwebsockets\n", stderr);
    if (r->ctx != NULL) lws_context_destroy(r->ctx);
    pthread_mutex_destroy(&r->mu);
    free(r);
    return NULL;
  }
  return r;
}

void rt_token(rt *r, const char *token) {
  if (r == NULL) return;
  pthread_mutex_lock(&r->mu);
  bool changed = strcmp(r->token, token) != 0 && strlen(token) < TOKEN_MAX;
  if (changed) {
    snprintf(r->token, sizeof r->token, "%s", token);
    r->gen++;
  }
  pthread_mutex_unlock(&r->mu);
  if (changed) lws_cancel_service(r->ctx);
}

bool rt_poked(rt *r) { return r != NULL && atomic_exchange(&r->poked, false); }

bool rt_live(rt *r) { return r != NULL && atomic_load(&r->live); }

void rt_stop(rt *r) {
  if (r == NULL) return;
  atomic_store(&r->stop, true);
  lws_cancel_service(r->ctx);
  pthread_join(r->thread, NULL);
  lws_context_destroy(r->ctx);
  pthread_mutex_destroy(&r->mu);
  sodium_memzero(r->token, sizeof r->token);
  free(r);
}
