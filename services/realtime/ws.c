/*
 * ws.c - the WebSocket endpoint on libwebsockets (see ws.h).
 *
 * Design. libwebsockets owns the sockets, the HTTP upgrade, framing,
 * masking, UTF-8 checks, ping/pong and close frames; this file only reacts
 * to its callbacks on the one service thread. Each connection (`conn`, the
 * per-session data lws allocates) holds its verified identity, its
 * channels and a send queue of shared messages: a publication is rendered
 * once and each subscribed connection queues a reference to it, so a
 * fan-out costs one copy of the text. A queue over its byte bound closes
 * the connection with 4008 instead of growing. Everything is written from
 * LWS_CALLBACK_SERVER_WRITEABLE, one message per callback as lws requires;
 * a close with a code is also done there (lws_close_reason, then -1), so
 * every close follows what was queued before it.
 *
 * Publications come from the bus thread through the inbox (a mutex-guarded
 * list); lws_cancel_service wakes the service thread, which drains the
 * inbox in LWS_CALLBACK_EVENT_WAIT_CANCELLED. Connections are found by a
 * linear walk of the list of live connections: fine for this slice; an
 * index by channel comes with the benchmark (README.md).
 *
 * Token verification (libs/authn) runs on the service thread: a cache hit
 * costs a hash, a miss an Ed25519 check and at most one Redis MGET on the
 * revocation recheck (bounded by libs/cache's timeouts).
 */
#include "services/realtime/ws.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/obs/log.h"
#include "services/realtime/channel.h"
#include "services/realtime/pub.h"

#define CLOSE_AUTH 4001
#define CLOSE_SLOW 4008
#define ROLE_MAX 32

/* A rendered message, shared by every queue that holds it. */
typedef struct msg {
  int refs; /* service thread only */
  size_t len;
  unsigned char buf[]; /* LWS_PRE bytes of headroom, then the text */
} msg;

typedef struct qnode {
  struct qnode *next;
  msg *m;
} qnode;

/* A subscription and what its client has seen of the channel: the offset
 * and epoch of the "subscribed" answer (which covers the recovered
 * publications), then of each publication sent. */
typedef struct sub {
  char *channel; /* NULL: a free slot */
  int64_t offset;
  char epoch[OFFSETS_EPOCH_MAX + 1];
} sub;

typedef struct conn {
  struct lws *wsi;
  struct conn *prev, *next; /* the server's live connections */
  bool authed;
  char client_id[UUID_STR_LEN + 1];
  char user_id[PASETO_CLAIM_STR_MAX + 1];
  char tenant_id[UUID_STR_LEN + 1];
  char role[ROLE_MAX];
  int64_t exp_ms;
  sub *subs; /* max_subscriptions slots */
  size_t nsubs;
  qnode *head, *tail;
  size_t qbytes;
  int close_code; /* != 0: close at the next writeable callback */
  char *rx;       /* the message being received */
  size_t rxlen;
} conn;

/* A publication waiting in the inbox. */
typedef struct inpub {
  struct inpub *next;
  char channel[CHANNEL_MAX + 1];
  int64_t offset;
  char epoch[OFFSETS_EPOCH_MAX + 1];
  msg *m;
} inpub;

struct ws_server {
  ws_config c;
  struct lws_context *ctx;
  pthread_t thread;
  bool thread_started;
  atomic_bool draining, stop;
  conn *conns; /* service thread only */
  atomic_size_t nconns;
  pthread_mutex_t mu; /* guards the inbox */
  inpub *in_head, *in_tail;
  size_t in_len;
};

/* ------------------------------------------------------------ messages --- */

static msg *msg_new(const char *text, size_t len) {
  msg *m = malloc(sizeof *m + LWS_PRE + len);
  if (m == NULL) return NULL;
  m->refs = 1;
  m->len = len;
  memcpy(m->buf + LWS_PRE, text, len);
  return m;
}

static void msg_unref(msg *m) {
  if (m != NULL && --m->refs == 0) free(m);
}

/* Asks for a close with code at the next writeable callback. */
static void conn_close(conn *c, int code) {
  if (c->close_code == 0) c->close_code = code;
  lws_callback_on_writable(c->wsi);
}

/* Queues a reference to m, or closes with 4008 over the bound. */
static void conn_send(ws_server *s, conn *c, msg *m) {
  if (c->close_code != 0) return;
  if (c->qbytes + m->len > s->c.send_queue_bytes) {
    log_warn("send queue full: closing", "client_id", c->client_id);
    conn_close(c, CLOSE_SLOW);
    return;
  }
  qnode *n = malloc(sizeof *n);
  if (n == NULL) {
    conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
    return;
  }
  m->refs++;
  n->m = m;
  n->next = NULL;
  if (c->tail != NULL)
    c->tail->next = n;
  else
    c->head = n;
  c->tail = n;
  c->qbytes += m->len;
  lws_callback_on_writable(c->wsi);
}

/* Sends the JSON object v (consumed) to c alone. */
static void conn_send_json(ws_server *s, conn *c, json_t *v) {
  char *text =
      v == NULL ? NULL : json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(v);
  msg *m = text == NULL ? NULL : msg_new(text, strlen(text));
  free(text);
  if (m == NULL) {
    conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
    return;
  }
  conn_send(s, c, m);
  msg_unref(m);
}

/* v with "id" set to the request's id when it had a numeric one. */
static json_t *with_id(json_t *v, json_t *id) {
  if (v != NULL && json_is_integer(id)) json_object_set(v, "id", id);
  return v;
}

static void send_error(ws_server *s, conn *c, json_t *id, const char *code,
                       const char *message) {
  json_t *v = json_pack("{s:s}", "op", "error");
  v = with_id(v, id);
  if (v != NULL) {
    json_object_set_new(v, "code", json_string(code));
    json_object_set_new(v, "message", json_string(message));
  }
  conn_send_json(s, c, v);
}

/* -------------------------------------------------------- subscriptions --- */

static sub *find_sub(ws_server *s, conn *c, const char *channel) {
  for (size_t i = 0; c->subs != NULL && i < s->c.max_subscriptions; i++)
    if (c->subs[i].channel != NULL && strcmp(c->subs[i].channel, channel) == 0)
      return &c->subs[i];
  return NULL;
}

/* A free slot for channel (*out NULL-free: the caller fills it). */
static int free_slot(ws_server *s, conn *c, sub **out) {
  if (c->nsubs >= s->c.max_subscriptions) return ERR_TOOBIG;
  if (c->subs == NULL)
    c->subs = calloc(s->c.max_subscriptions, sizeof *c->subs);
  if (c->subs == NULL) return ERR_NOMEM;
  for (size_t i = 0; i < s->c.max_subscriptions; i++) {
    if (c->subs[i].channel != NULL) continue;
    *out = &c->subs[i];
    return ERR_OK;
  }
  return ERR_TOOBIG;
}

static void remove_sub(ws_server *s, conn *c, const char *channel) {
  sub *slot = find_sub(s, c, channel);
  if (slot == NULL) return;
  free(slot->channel);
  slot->channel = NULL;
  c->nsubs--;
}

/* ------------------------------------------------------- authentication --- */

/* Verifies token; on success c is authenticated and "ready" is queued. */
static void authenticate(ws_server *s, conn *c, const char *token, json_t *id) {
  paseto_claims cl;
  enum authn_result why = AUTHN_MISSING;
  int rc = token == NULL || token[0] == '\0'
               ? ERR_INVAL
               : authn_verify(s->c.verifier, token, strlen(token), &cl, &why);
  if (rc != ERR_OK || strlen(cl.sub) > UUID_STR_LEN ||
      strlen(cl.tid) > UUID_STR_LEN || strlen(cl.role) >= ROLE_MAX) {
    log_info("websocket authentication refused", "reason",
             authn_result_str(why));
    conn_close(c, rc == ERR_UNAVAILABLE ? LWS_CLOSE_STATUS_UNEXPECTED_CONDITION
                                        : CLOSE_AUTH);
    return;
  }
  c->authed = true;
  /* Lengths checked above: these copies never cut. */
  str_copy(c->user_id, cl.sub, sizeof c->user_id);
  str_copy(c->tenant_id, cl.tid, sizeof c->tenant_id);
  str_copy(c->role, cl.role, sizeof c->role);
  c->exp_ms = cl.exp_ms;
  int64_t left_ms = cl.exp_ms - time_now_ms();
  lws_set_timer_usecs(c->wsi, (lws_usec_t)(left_ms > 0 ? left_ms : 0) * 1000);
  char exp[RFC3339_MS_LEN + 1];
  if (time_format_rfc3339(cl.exp_ms, exp) != ERR_OK) exp[0] = '\0';
  json_t *v = json_pack("{s:s}", "op", "ready");
  v = with_id(v, id);
  if (v != NULL)
    json_object_update_new(v, json_pack("{s:s, s:s, s:s, s:s, s:s}",
                                        "client_id", c->client_id, "user_id",
                                        c->user_id, "tenant_id", c->tenant_id,
                                        "role", c->role, "expires_at", exp));
  conn_send_json(s, c, v);
}

/* The upgrade's "Authorization: Bearer <token>", if any. */
static void header_auth(ws_server *s, conn *c) {
  int n = lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  if (n <= 0) {
    lws_set_timer_usecs(c->wsi, (lws_usec_t)s->c.auth_timeout_ms * 1000);
    return;
  }
  char *h = malloc((size_t)n + 1);
  if (h == NULL ||
      lws_hdr_copy(c->wsi, h, n + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
    free(h);
    conn_close(c, CLOSE_AUTH);
    return;
  }
  if (strncmp(h, "Bearer ", 7) == 0)
    authenticate(s, c, h + 7, NULL);
  else
    conn_close(c, CLOSE_AUTH);
  sodium_memzero(h, (size_t)n);
  free(h);
}

/* ----------------------------------------------------------------- ops --- */

/* The channel of req, authorised for c (an error is sent otherwise). */
static const char *authorised_channel(ws_server *s, conn *c, json_t *req,
                                      json_t *id) {
  const char *channel = json_string_value(json_object_get(req, "channel"));
  channel_who who = {c->user_id, c->tenant_id, c->role};
  enum channel_verdict v = channel_authorize(channel, &who);
  if (v == CHANNEL_OK) return channel;
  send_error(s, c, id, channel_verdict_code(v),
             v == CHANNEL_DENIED      ? "not allowed on this channel"
             : v == CHANNEL_NOT_FOUND ? "no such channel"
                                      : "bad channel name");
  return NULL;
}

/* {"offset":N,"epoch":"…"} (recover, since): false when malformed. */
static bool position(json_t *p, int64_t *offset, const char **epoch) {
  json_t *o = json_object_get(p, "offset");
  *epoch = json_string_value(json_object_get(p, "epoch"));
  if (!json_is_integer(o) || json_integer_value(o) < 0 || *epoch == NULL ||
      strlen(*epoch) > OFFSETS_EPOCH_MAX)
    return false;
  *offset = (int64_t)json_integer_value(o);
  return true;
}

/* The publications of h as the pub frames they were (or would have been)
 * when sent live, so a client handles both alike. NULL: out of memory or
 * an entry that is not JSON. */
static json_t *publications(const char *channel, const offsets_history *h) {
  json_t *a = json_array();
  for (size_t i = 0; a != NULL && i < h->n; i++) {
    char *text = NULL;
    size_t len = 0;
    json_t *f = NULL;
    if (pub_frame_text(channel, h->pubs[i].offset, h->epoch, h->pubs[i].event,
                       h->pubs[i].len, &text, &len) == ERR_OK)
      f = json_loadb(text, len, 0, NULL);
    free(text);
    if (f == NULL || json_array_append_new(a, f) != 0) {
      json_decref(a);
      a = NULL;
    }
  }
  return a;
}

/*
 * subscribe, with or without recover.
 *
 * No gap, no duplicate. Everything here runs on the one libwebsockets
 * thread, and so does delivery (drain_inbox): while this function runs no
 * publication reaches any connection. One Redis script reads the channel's
 * offset O, its epoch and (with recover) the history after the client's
 * offset, atomically with respect to offsets_next, which gives an offset
 * and writes the history in one script too. So every publication is
 * either <= O - taken before the read, hence in the recovered
 * `publications` (or at/before the client's own offset) - or > O, taken
 * after the read: the bus thread hands it to the inbox only after
 * offsets_next returned, the inbox is drained on this thread after this
 * function, when the subscription exists, so it is delivered as a pub.
 * What remains is a publication <= O still in the inbox (taken before the
 * read, not yet delivered): it was recovered, or is before the position
 * the client was told, so it must not be sent again. The subscription
 * therefore remembers (O, epoch) and deliver() sends only what
 * offsets_is_new says is later. Without recover the same holds: the
 * client starts at O.
 */
static void op_subscribe(ws_server *s, conn *c, json_t *req, json_t *id) {
  const char *channel = authorised_channel(s, c, req, id);
  if (channel == NULL) return;
  json_t *rec = json_object_get(req, "recover");
  int64_t since = -1;
  const char *epoch = NULL;
  if (rec != NULL && !json_is_null(rec) && !position(rec, &since, &epoch)) {
    send_error(s, c, id, "INVALID_ARGUMENT",
               "recover needs an offset (>= 0) and an epoch");
    return;
  }
  sub *existing = find_sub(s, c, channel), *slot = NULL;
  if (existing != NULL) since = -1; /* live already: recovering would repeat */
  int rc = existing != NULL ? ERR_OK : free_slot(s, c, &slot);
  if (rc != ERR_OK) {
    send_error(s, c, id, "INVALID_ARGUMENT",
               rc == ERR_TOOBIG ? "too many subscriptions" : "out of memory");
    return;
  }
  offsets_history h;
  if (since >= 0)
    rc = offsets_read(s->c.offsets, channel, since, epoch, 0, &h);
  else {
    memset(&h, 0, sizeof h);
    rc = offsets_current(s->c.offsets, channel, &h.offset, h.epoch);
  }
  json_t *pubs = rc != ERR_OK ? NULL
                 : h.complete ? publications(channel, &h)
                              : json_array();
  if (pubs == NULL) {
    offsets_history_free(&h);
    send_error(s, c, id, "UNAVAILABLE", "try again later");
    return;
  }
  if (slot != NULL) { /* an existing subscription keeps its position */
    slot->channel = strdup(channel);
    if (slot->channel == NULL) {
      offsets_history_free(&h);
      json_decref(pubs);
      send_error(s, c, id, "INVALID_ARGUMENT", "out of memory");
      return;
    }
    slot->offset = h.offset;
    memcpy(slot->epoch, h.epoch, sizeof slot->epoch);
    c->nsubs++;
  }
  json_t *r = with_id(json_pack("{s:s}", "op", "subscribed"), id);
  if (r != NULL)
    json_object_update_new(
        r, json_pack("{s:s, s:I, s:s, s:b, s:o}", "channel", channel, "offset",
                     (json_int_t)h.offset, "epoch", h.epoch, "recovered",
                     since >= 0 && h.complete, "publications", pubs));
  else
    json_decref(pubs);
  offsets_history_free(&h);
  conn_send_json(s, c, r);
}

/* history (staff and above): the publications after since in its epoch
 * (none when the epoch is not the channel's: positions do not carry over
 * epochs), or the last ones; at most limit. */
static void op_history(ws_server *s, conn *c, json_t *req, json_t *id) {
  channel_who who = {c->user_id, c->tenant_id, c->role};
  if (!channel_is_staff(&who)) {
    send_error(s, c, id, "PERMISSION_DENIED", "history is for staff");
    return;
  }
  const char *channel = authorised_channel(s, c, req, id);
  if (channel == NULL) return;
  json_t *since_v = json_object_get(req, "since"),
         *limit_v = json_object_get(req, "limit");
  int64_t since = -1;
  const char *epoch = NULL;
  if ((since_v != NULL && !json_is_null(since_v) &&
       !position(since_v, &since, &epoch)) ||
      (limit_v != NULL &&
       (!json_is_integer(limit_v) || json_integer_value(limit_v) < 1 ||
        json_integer_value(limit_v) > WS_HISTORY_LIMIT))) {
    send_error(
        s, c, id, "INVALID_ARGUMENT",
        "since needs an offset and an epoch; limit 1.." WS_HISTORY_LIMIT_STR);
    return;
  }
  size_t limit =
      limit_v != NULL ? (size_t)json_integer_value(limit_v) : WS_HISTORY_LIMIT;
  offsets_history h;
  int rc = offsets_read(s->c.offsets, channel, since, epoch, limit, &h);
  json_t *pubs = rc == ERR_OK ? publications(channel, &h) : NULL;
  if (pubs == NULL) {
    offsets_history_free(&h);
    send_error(s, c, id, "UNAVAILABLE", "try again later");
    return;
  }
  json_t *r = with_id(json_pack("{s:s}", "op", "history"), id);
  if (r != NULL)
    json_object_update_new(r,
                           json_pack("{s:s, s:I, s:s, s:o}", "channel", channel,
                                     "offset", (json_int_t)h.offset, "epoch",
                                     h.epoch, "publications", pubs));
  else
    json_decref(pubs);
  offsets_history_free(&h);
  conn_send_json(s, c, r);
}

static void op_unsubscribe(ws_server *s, conn *c, json_t *req, json_t *id) {
  const char *channel = json_string_value(json_object_get(req, "channel"));
  if (channel == NULL) {
    send_error(s, c, id, "INVALID_ARGUMENT", "channel is required");
    return;
  }
  remove_sub(s, c, channel);
  json_t *r = with_id(json_pack("{s:s}", "op", "unsubscribed"), id);
  if (r != NULL) json_object_set_new(r, "channel", json_string(channel));
  conn_send_json(s, c, r);
}

/* One complete client message. */
static void handle_message(ws_server *s, conn *c, const char *text,
                           size_t len) {
  json_t *req = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
  json_t *id = json_object_get(req, "id");
  const char *op = json_string_value(json_object_get(req, "op"));
  if (!c->authed) {
    if (op != NULL && strcmp(op, "auth") == 0)
      authenticate(s, c, json_string_value(json_object_get(req, "token")), id);
    else
      conn_close(c, CLOSE_AUTH);
  } else if (op == NULL) {
    send_error(s, c, id, "INVALID_ARGUMENT", "not a JSON object with an op");
  } else if (strcmp(op, "subscribe") == 0) {
    op_subscribe(s, c, req, id);
  } else if (strcmp(op, "unsubscribe") == 0) {
    op_unsubscribe(s, c, req, id);
  } else if (strcmp(op, "history") == 0) {
    op_history(s, c, req, id);
  } else {
    send_error(s, c, id, "INVALID_ARGUMENT", "unknown or unsupported op");
  }
  json_decref(req);
}

/* ------------------------------------------------------------- receive --- */

/* Gathers fragments into one message of at most WS_MAX_MESSAGE bytes.
 * Returns -1 to close the connection (1009 set). */
static int receive(ws_server *s, conn *c, const void *in, size_t len) {
  if (c->rxlen + len > WS_MAX_MESSAGE) {
    lws_close_reason(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                     (unsigned char *)"message too large", 17);
    return -1;
  }
  if (c->rx == NULL) c->rx = malloc(WS_MAX_MESSAGE);
  if (c->rx == NULL) return -1;
  memcpy(c->rx + c->rxlen, in, len);
  c->rxlen += len;
  if (!lws_is_final_fragment(c->wsi) ||
      lws_remaining_packet_payload(c->wsi) > 0)
    return 0;
  if (c->close_code == 0) handle_message(s, c, c->rx, c->rxlen);
  free(c->rx);
  c->rx = NULL;
  c->rxlen = 0;
  return 0;
}

/* --------------------------------------------------------------- write --- */

static int writeable(conn *c) {
  if (c->close_code != 0) {
    lws_close_reason(c->wsi, (enum lws_close_status)c->close_code, NULL, 0);
    return -1;
  }
  qnode *n = c->head;
  if (n == NULL) return 0;
  c->head = n->next;
  if (c->head == NULL) c->tail = NULL;
  c->qbytes -= n->m->len;
  int w = lws_write(c->wsi, n->m->buf + LWS_PRE, n->m->len, LWS_WRITE_TEXT);
  bool short_write = w < (int)n->m->len;
  msg_unref(n->m);
  free(n);
  if (short_write) return -1;
  if (c->head != NULL) lws_callback_on_writable(c->wsi);
  return 0;
}

/* ----------------------------------------------------------- lifecycle --- */

static void conn_open(ws_server *s, conn *c, struct lws *wsi) {
  memset(c, 0, sizeof *c);
  c->wsi = wsi;
  uuid_v7_str(c->client_id);
  c->next = s->conns;
  if (s->conns != NULL) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  if (atomic_load(&s->draining))
    conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY);
  else
    header_auth(s, c);
}

static void conn_gone(ws_server *s, conn *c) {
  if (c->wsi == NULL) return; /* never opened */
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next != NULL) c->next->prev = c->prev;
  s->nconns--;
  for (qnode *n = c->head, *next; n != NULL; n = next) {
    next = n->next;
    msg_unref(n->m);
    free(n);
  }
  for (size_t i = 0; c->subs != NULL && i < s->c.max_subscriptions; i++)
    free(c->subs[i].channel);
  free(c->subs);
  free(c->rx);
  c->wsi = NULL;
}

/* The auth deadline passed, or the token expired. */
static void timer_fired(conn *c) {
  if (!c->authed || time_now_ms() >= c->exp_ms) conn_close(c, CLOSE_AUTH);
}

/* ---------------------------------------------------------------- inbox --- */

/* To every subscriber that has not seen it (see op_subscribe). */
static void deliver(ws_server *s, const inpub *p) {
  for (conn *c = s->conns; c != NULL; c = c->next) {
    sub *b = c->authed ? find_sub(s, c, p->channel) : NULL;
    if (b == NULL || !offsets_is_new(b->offset, b->epoch, p->offset, p->epoch))
      continue;
    b->offset = p->offset;
    memcpy(b->epoch, p->epoch, sizeof b->epoch);
    conn_send(s, c, p->m);
  }
}

static void drain_inbox(ws_server *s) {
  pthread_mutex_lock(&s->mu);
  inpub *p = s->in_head;
  s->in_head = s->in_tail = NULL;
  s->in_len = 0;
  pthread_mutex_unlock(&s->mu);
  while (p != NULL) {
    inpub *next = p->next;
    deliver(s, p);
    msg_unref(p->m);
    free(p);
    p = next;
  }
  if (atomic_load(&s->draining))
    for (conn *c = s->conns; c != NULL; c = c->next)
      conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY);
}

int ws_server_publish(ws_server *s, const char *channel, int64_t offset,
                      const char *epoch, const char *text, size_t len) {
  if (atomic_load(&s->draining)) return ERR_CLOSED;
  if (strlen(channel) > CHANNEL_MAX || strlen(epoch) > OFFSETS_EPOCH_MAX)
    return ERR_INVAL;
  inpub *p = calloc(1, sizeof *p);
  msg *m = p == NULL ? NULL : msg_new(text, len);
  if (m == NULL) {
    free(p);
    return ERR_NOMEM;
  }
  snprintf(p->channel, sizeof p->channel, "%s", channel);
  snprintf(p->epoch, sizeof p->epoch, "%s", epoch);
  p->offset = offset;
  p->m = m;
  pthread_mutex_lock(&s->mu);
  bool full = s->in_len >= s->c.inbox_max;
  if (!full) {
    if (s->in_tail != NULL)
      s->in_tail->next = p;
    else
      s->in_head = p;
    s->in_tail = p;
    s->in_len++;
  }
  pthread_mutex_unlock(&s->mu);
  if (full) {
    free(m);
    free(p);
    return ERR_TOOBIG;
  }
  lws_cancel_service(s->ctx);
  return ERR_OK;
}

/* ------------------------------------------------------------ callback --- */

static bool right_path(struct lws *wsi) {
  char uri[64];
  int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
  return n > 0 && strcmp(uri, WS_PATH) == 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len) {
  ws_server *s = lws_context_user(lws_get_context(wsi));
  conn *c = user;
  switch (reason) {
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
    return right_path(wsi) ? 0 : 1;
  case LWS_CALLBACK_ESTABLISHED:
    conn_open(s, c, wsi);
    return 0;
  case LWS_CALLBACK_RECEIVE:
    return receive(s, c, in, len);
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return writeable(c);
  case LWS_CALLBACK_TIMER:
    timer_fired(c);
    return 0;
  case LWS_CALLBACK_CLOSED:
    conn_gone(s, c);
    return 0;
  case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
    drain_inbox(s);
    return 0;
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

/* rx_buffer_size is allocated per connection (client messages are small;
 * receive() gathers longer ones); tx_packet_size keeps sends in 4 KiB
 * pieces, as before (lws sends at most rx_buffer_size when it is 0). */
static const struct lws_protocols kProtocols[] = {
    {"realtime", callback, sizeof(conn), 1024, 0, NULL, 4096},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Idle connections get a ping after 30 s and are dropped after 60 s. */
static const lws_retry_bo_t kIdle = {
    .secs_since_valid_ping = 30,
    .secs_since_valid_hangup = 60,
};

static void lws_to_log(int level, const char *line) {
  size_t n = strlen(line);
  char buf[256];
  snprintf(buf, sizeof buf, "%.*s",
           (int)(n > 0 && line[n - 1] == '\n' ? n - 1 : n), line);
  if (level & LLL_ERR)
    log_error("libwebsockets", "detail", buf);
  else
    log_warn("libwebsockets", "detail", buf);
}

static void *service_thread(void *arg) {
  ws_server *s = arg;
  while (!atomic_load(&s->stop))
    if (lws_service(s->ctx, 0) < 0) break;
  return NULL;
}

static bool config_ok(const ws_config *c) {
  return c != NULL && c->addr != NULL && c->port > 0 && c->port < 65536 &&
         c->verifier != NULL && c->offsets != NULL &&
         c->max_subscriptions > 0 && c->send_queue_bytes > 0 &&
         c->auth_timeout_ms > 0 && c->inbox_max > 0;
}

static int create_context(ws_server *s) {
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = s->c.port;
  info.iface = s->c.addr;
  info.protocols = kProtocols;
  info.user = s;
  info.retry_and_idle_policy = &kIdle;
  info.options =
      LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
  lws_set_log_level(LLL_ERR | LLL_WARN, lws_to_log);
  s->ctx = lws_create_context(&info);
  return s->ctx != NULL ? ERR_OK : ERR_UNAVAILABLE;
}

int ws_server_start(const ws_config *c, ws_server **out) {
  *out = NULL;
  if (!config_ok(c)) return ERR_INVAL;
  ws_server *s = calloc(1, sizeof *s);
  if (s == NULL) return ERR_NOMEM;
  s->c = *c;
  pthread_mutex_init(&s->mu, NULL);
  int rc = create_context(s);
  if (rc == ERR_OK && pthread_create(&s->thread, NULL, service_thread, s) != 0)
    rc = ERR_INTERNAL;
  s->thread_started = rc == ERR_OK;
  if (rc != ERR_OK) {
    ws_server_free(s, 0);
    return rc;
  }
  *out = s;
  return ERR_OK;
}

/* Wakes the service thread until it has no connection or grace_ms ran
 * out. */
static void wait_closed(ws_server *s, int64_t grace_ms) {
  int64_t end = time_mono_ms() + grace_ms;
  while (time_mono_ms() < end) {
    lws_cancel_service(s->ctx);
    time_sleep_ms(20);
    if (atomic_load(&s->nconns) == 0) break;
  }
}

void ws_server_free(ws_server *s, int64_t grace_ms) {
  if (s == NULL) return;
  atomic_store(&s->draining, true);
  if (s->thread_started) {
    wait_closed(s, grace_ms);
    atomic_store(&s->stop, true);
    lws_cancel_service(s->ctx);
    pthread_join(s->thread, NULL);
  }
  if (s->ctx != NULL) lws_context_destroy(s->ctx);
  for (inpub *p = s->in_head, *next; p != NULL; p = next) {
    next = p->next;
    free(p->m);
    free(p);
  }
  pthread_mutex_destroy(&s->mu);
  free(s);
}
