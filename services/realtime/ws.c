/*
 * ws.c - the WebSocket endpoint on libwebsockets (see ws.h); the ops are
 * in ws_ops.c, the shared types in ws_int.h.
 *
 * Design. libwebsockets owns the sockets, the HTTP upgrade, framing,
 * masking, UTF-8 checks, ping/pong and close frames; this file only reacts
 * to its callbacks on the one service thread, which runs a libev (epoll)
 * loop of its own (create_context explains why). Each connection (`conn`, the
 * per-session data lws allocates) holds its verified identity, its
 * channels and a send queue of shared messages: a publication is rendered
 * once and each subscribed connection queues a reference to it, so a
 * fan-out costs one copy of the text. A queue over its byte bound closes
 * the connection with 4008 instead of growing. A publication for a
 * connection with nothing waiting is written at once in the pass that
 * drains the inbox (deliver_to); everything else is queued and written
 * from LWS_CALLBACK_SERVER_WRITEABLE, several frames per callback until
 * the socket pushes back (lws_partial_buffered, as lws asks of more than
 * one write per callback); a close with a code is also done there
 * (lws_close_reason, then -1), so every close follows what was queued
 * before it.
 *
 * Publications come from the bus thread through the inbox (a mutex-guarded
 * list); lws_cancel_service wakes the service thread (at most one wake-up
 * pending; see wake()), which drains the inbox in
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED and finds the subscribers
 * through the index `chans` (channel -> a list of its subscriptions), so
 * a publication costs its subscribers, not every connection. A pass
 * delivers its publications channel by channel and, within a channel,
 * subscriber by subscriber, so the frames one connection gets in a pass
 * are written together, corked (see set_cork): a burst costs the
 * network and the client a segment per connection, not one per frame. The
 * recheck thread's reports of revoked tokens come the same way (close 4003).
 *
 * Per-address cap: `addrs` counts the connections of each remote address;
 * the upgrade of one past max_conns_per_addr is refused in
 * LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION. Presence: subscribe and
 * unsubscribe write it at once (ws_ops.c); a timer (lws_sul) queues every
 * ttl/3 a refresh of every local subscription, and a closed connection
 * its leaves, for the writer thread (pwriter.h), so this thread never
 * waits on Redis for them.
 *
 * Token verification (libs/authn) runs on the service thread at auth and
 * refresh: a cache hit costs a hash, a miss an Ed25519 check and at most
 * one Redis MGET on the revocation recheck (bounded by libs/cache's
 * timeouts). The periodic recheck of live tokens runs on its own thread
 * (recheck.h).
 */
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "services/realtime/ws_int.h"

#define PRESENCE_QUEUE_MAX 100000 /* queued presence writes (~330 B each) */

/* ------------------------------------------------------------ messages --- */

msg *ws_msg_new(const char *text, size_t len) {
  msg *m = malloc(sizeof *m + LWS_PRE + len);
  if (m == NULL) return NULL;
  m->refs = 1;
  m->born_ns = 0;
  m->kind = CHANNEL_KIND_PRIVATE;
  m->len = len;
  memcpy(m->buf + LWS_PRE, text, len);
  return m;
}

void ws_msg_unref(msg *m) {
  if (m != NULL && --m->refs == 0) free(m);
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Asks for a close with code at the next writeable callback. */
void ws_conn_close(conn *c, int code) {
  if (c->close_code == 0) c->close_code = code;
  lws_callback_on_writable(c->wsi);
}

/* Queues a reference to m, or closes with 4008 over the bound. */
void ws_conn_send(ws_server *s, conn *c, msg *m) {
  if (c->close_code != 0) return;
  if (c->qbytes + m->len > s->c.send_queue_bytes) {
    log_warn("send queue full: closing", "client_id", c->client_id);
    metrics_inc(s->m.slow_closes);
    ws_conn_close(c, CLOSE_SLOW);
    return;
  }
  qnode *n = malloc(sizeof *n);
  if (n == NULL) {
    ws_conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
    return;
  }
  m->refs++;
  n->m = m;
  n->next = NULL;
  if (c->tail != NULL) {
    c->tail->next = n; /* a writeable callback is asked for already */
  } else {
    c->head = n;
    lws_callback_on_writable(c->wsi);
  }
  c->tail = n;
  c->qbytes += m->len;
}

void ws_send_json(ws_server *s, conn *c, json_t *v) {
  char *text =
      v == NULL ? NULL : json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(v);
  msg *m = text == NULL ? NULL : ws_msg_new(text, strlen(text));
  free(text);
  if (m == NULL) {
    ws_conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
    return;
  }
  ws_conn_send(s, c, m);
  ws_msg_unref(m);
}

json_t *ws_with_id(json_t *v, json_t *id) {
  if (v != NULL && json_is_integer(id)) json_object_set(v, "id", id);
  return v;
}

void ws_send_error(ws_server *s, conn *c, json_t *id, const char *code,
                   const char *message) {
  json_t *v = ws_with_id(json_pack("{s:s}", "op", "error"), id);
  if (v != NULL) {
    json_object_set_new(v, "code", json_string(code));
    json_object_set_new(v, "message", json_string(message));
  }
  ws_send_json(s, c, v);
}

/* -------------------------------------------------------- subscriptions --- */

sub *ws_find_sub(ws_server *s, conn *c, const char *channel) {
  (void)s;
  for (size_t i = 0; i < c->nsubs; i++)
    if (strcmp(c->subs[i]->channel, channel) == 0) return c->subs[i];
  return NULL;
}

/* Links b at the head of its channel's list in the index. */
static int index_add(ws_server *s, sub *b) {
  void **head = strmap_slot(s->chans, b->channel, true);
  if (head == NULL) return ERR_NOMEM;
  b->cprev = NULL;
  b->cnext = *head;
  if (b->cnext != NULL) b->cnext->cprev = b;
  *head = b;
  return ERR_OK;
}

static void index_remove(ws_server *s, sub *b) {
  if (b->cprev != NULL) {
    b->cprev->cnext = b->cnext;
  } else {
    void **head = strmap_slot(s->chans, b->channel, false);
    if (head != NULL) *head = b->cnext;
    if (head != NULL && b->cnext == NULL) strmap_del(s->chans, b->channel);
  }
  if (b->cnext != NULL) b->cnext->cprev = b->cprev;
  b->cprev = b->cnext = NULL;
}

/* Room for one more subscription pointer: the array starts at two and
 * doubles up to the cap, so a connection pays for the channels it uses
 * (a screen: one), not for max_subscriptions of them. */
static bool subs_room(ws_server *s, conn *c) {
  if (c->nsubs < c->subs_cap) return true;
  if (c->nsubs >= s->c.max_subscriptions) return false;
  size_t cap = c->subs_cap == 0 ? 2 : (size_t)c->subs_cap * 2;
  if (cap > s->c.max_subscriptions) cap = s->c.max_subscriptions;
  sub **a = realloc(c->subs, cap * sizeof *a);
  if (a == NULL) return false;
  c->subs = a;
  c->subs_cap = (uint16_t)cap;
  return true;
}

int ws_add_sub(ws_server *s, conn *c, const char *channel, int64_t offset,
               const char *epoch) {
  if (c->nsubs >= s->c.max_subscriptions) return ERR_TOOBIG;
  size_t len = strlen(channel);
  sub *b = subs_room(s, c) ? malloc(sizeof *b + len + 1) : NULL;
  if (b == NULL) return ERR_NOMEM;
  memcpy(b->channel, channel, len + 1);
  if (index_add(s, b) != ERR_OK) {
    free(b);
    return ERR_NOMEM;
  }
  b->owner = c;
  b->offset = offset;
  snprintf(b->epoch, sizeof b->epoch, "%s", epoch);
  c->subs[c->nsubs++] = b;
  metrics_add(s->m.subs[channel_kind_of(channel)], 1);
  return ERR_OK;
}

/* Best effort: a replica that cannot remove it lets it expire. */
static void presence_gone(ws_server *s, conn *c, const char *channel,
                          bool now) {
  if (!now) {
    if (!pwriter_leave(s->pw, channel, c->client_id))
      log_debug("presence leave dropped: it expires");
    return;
  }
  int rc = presence_leave(s->c.presence, channel, c->client_id);
  if (rc != ERR_OK) log_debug("presence not removed", "error", err_str(rc));
}

void ws_remove_sub(ws_server *s, conn *c, sub *b, bool presence_now) {
  index_remove(s, b);
  presence_gone(s, c, b->channel, presence_now);
  metrics_add(s->m.subs[channel_kind_of(b->channel)], -1);
  for (size_t i = 0; i < c->nsubs; i++)
    if (c->subs[i] == b) {
      c->subs[i] = c->subs[--c->nsubs]; /* order does not matter */
      break;
    }
  free(b);
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
  if (c->close_code == 0) ws_handle_message(s, c, c->rx, c->rxlen);
  free(c->rx);
  c->rx = NULL;
  c->rxlen = 0;
  return 0;
}

/* --------------------------------------------------------------- write --- */

/* Writes m as one text frame. A send the socket takes only in part is
 * finished by libwebsockets (its buffer, then a writeable callback of its
 * own); false only when the connection failed. */
static bool write_msg(ws_server *s, conn *c, const msg *m) {
  int w = lws_write(c->wsi, (unsigned char *)m->buf + LWS_PRE, m->len,
                    LWS_WRITE_TEXT);
  if (w < (int)m->len) return false;
  if (m->born_ns != 0)
    metrics_observe(s->m.latency, (double)(mono_ns() - m->born_ns) / 1e9);
  return true;
}

/* Corking (TCP_CORK): while a connection's frames of one pass are written
 * (several publications of a channel, or its queued frames), the kernel
 * holds partial segments; uncorked right after, they leave together in as
 * few segments as they fill - for the client one wake-up and one read
 * instead of one per frame. The frames, their order and their framing
 * stay libwebsockets' (lws_write); only the segmenting changes. fd < 0:
 * nothing. */
static void set_cork(int fd, int on) {
  if (fd >= 0) (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

/* Up to WRITE_BATCH queued frames per callback, stopping as soon as
 * libwebsockets had to keep part of one (lws_partial_buffered: the socket
 * is full), so a connection's writes cost one writeable callback, not one
 * per frame, and one slow socket cannot hold the thread. */
#define WRITE_BATCH 16

static int writeable(ws_server *s, conn *c) {
  if (c->close_code != 0) {
    lws_close_reason(c->wsi, (enum lws_close_status)c->close_code, NULL, 0);
    return -1;
  }
  if (c->ping_due) {
    /* A payload: libwebsockets 4.1 passes an empty pong to no callback. */
    unsigned char ping[LWS_PRE + 4] = {0};
    memcpy(ping + LWS_PRE, "ping", 4);
    c->ping_due = false;
    if (lws_write(c->wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 4) return -1;
  }
  int fd =
      c->head != NULL && c->head->next != NULL ? lws_get_socket_fd(c->wsi) : -1;
  set_cork(fd, 1);
  int rc = 0;
  for (int i = 0; i < WRITE_BATCH && c->head != NULL; i++) {
    if (lws_partial_buffered(c->wsi)) break;
    qnode *n = c->head;
    c->head = n->next;
    if (c->head == NULL) c->tail = NULL;
    c->qbytes -= n->m->len;
    bool ok = write_msg(s, c, n->m);
    ws_msg_unref(n->m);
    free(n);
    if (!ok) {
      rc = -1;
      break;
    }
  }
  set_cork(fd, 0);
  if (rc != 0) return rc;
  if (c->head != NULL) lws_callback_on_writable(c->wsi);
  return 0;
}

/* ------------------------------------------------- per-address counting --- */

static void peer_address(struct lws *wsi, char out[ADDR_MAX]) {
  if (lws_get_peer_simple(wsi, out, ADDR_MAX) == NULL) out[0] = '\0';
}

/* May one more connection come from wsi's address? */
static bool address_has_room(ws_server *s, struct lws *wsi) {
  char addr[ADDR_MAX];
  peer_address(wsi, addr);
  void **n = strmap_slot(s->addrs, addr, false);
  if (n == NULL || (size_t)(intptr_t)*n < s->c.max_conns_per_addr) return true;
  metrics_inc(s->m.refused_addr);
  log_warn("connections per address at the cap: upgrade refused");
  return false;
}

static void address_count(ws_server *s, conn *c, int delta) {
  void **n = strmap_slot(s->addrs, c->addr, delta > 0);
  if (n == NULL) return; /* out of memory: uncounted, never negative */
  intptr_t v = (intptr_t)*n + delta;
  if (v <= 0)
    strmap_del(s->addrs, c->addr);
  else
    *n = (void *)v;
}

/* ----------------------------------------------------------- lifecycle --- */

static void conn_open(ws_server *s, conn *c, struct lws *wsi) {
  memset(c, 0, sizeof *c);
  c->wsi = wsi;
  uuid_v7_str(c->client_id);
  peer_address(wsi, c->addr);
  address_count(s, c, +1);
  c->next = s->conns;
  if (s->conns != NULL) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  metrics_add(s->m.connections, 1);
  if (atomic_load(&s->draining)) {
    ws_conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY);
    return;
  }
  c->last_rx_ms = time_mono_ms();
  c->exp_ms = time_now_ms() + s->c.auth_timeout_ms; /* the sweep closes */
  int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  if (n <= 0) return; /* the first frame authenticates */
  char *h = malloc((size_t)n + 1);
  if (h == NULL ||
      lws_hdr_copy(wsi, h, n + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
    ws_conn_close(c, CLOSE_AUTH);
  else if (strncmp(h, "Bearer ", 7) == 0)
    ws_authenticate(s, c, h + 7, NULL);
  else
    ws_conn_close(c, CLOSE_AUTH);
  if (h != NULL) sodium_memzero(h, (size_t)n);
  free(h);
}

static void conn_gone(ws_server *s, conn *c) {
  if (c->wsi == NULL) return; /* never opened */
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next != NULL) c->next->prev = c->prev;
  s->nconns--;
  metrics_add(s->m.connections, -1);
  address_count(s, c, -1);
  recheck_release(s->recheck, c->tok);
  for (qnode *n = c->head, *next; n != NULL; n = next) {
    next = n->next;
    ws_msg_unref(n->m);
    free(n);
  }
  while (c->nsubs > 0) ws_remove_sub(s, c, c->subs[c->nsubs - 1], false);
  free(c->subs);
  free(c->rx);
  c->wsi = NULL;
}

/* ---------------------------------------------------------------- sweep --- */

/*
 * Once a second one walk over the connections does what a timer per
 * connection would: close 4001 at the token's expiry (or the auth
 * deadline before auth), ping a connection silent for ping_idle_ms, drop
 * one that sent nothing (no pong either) for twice that. libwebsockets 4.1
 * keeps every timer of the thread in one sorted list, so a timer per
 * connection cost an insertion walking up to all of them (and its
 * validity timer one more at every received frame); the walk here costs
 * a few cache lines per connection per second. Expiry is therefore up to
 * SWEEP_MS late.
 */
#define SWEEP_MS 1000

static void sweep_conn(const ws_server *s, conn *c, int64_t now, int64_t mono,
                       bool late) {
  if (c->close_code != 0) return;
  if (now >= c->exp_ms) {
    ws_conn_close(c, CLOSE_AUTH);
  } else if (!late && mono - c->last_rx_ms >= 2 * s->c.ping_idle_ms) {
    log_info("no pong: dropping", "client_id", c->client_id);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  } else if (mono - c->last_rx_ms >= s->c.ping_idle_ms && !c->pinged) {
    c->pinged = c->ping_due = true;
    lws_callback_on_writable(c->wsi);
  }
}

static void sweep(lws_sorted_usec_list_t *sul) {
  ws_server *s = lws_container_of(sul, ws_server, sweep);
  int64_t now = time_now_ms(), mono = time_mono_ms();
  /* Late (the thread was busy or starved of CPU since the last sweep):
   * pongs may be waiting unread in the sockets, so no hang-up this time;
   * the next sweep, after the loop has read them, decides. */
  bool late = s->last_sweep_ms != 0 && mono - s->last_sweep_ms > 2 * SWEEP_MS;
  s->last_sweep_ms = mono;
  for (conn *c = s->conns; c != NULL; c = c->next)
    sweep_conn(s, c, now, mono, late);
  lws_sul_schedule(s->ctx, 0, &s->sweep, sweep, (lws_usec_t)SWEEP_MS * 1000);
}

/* Any frame from the client shows it is there. */
static void heard(conn *c) {
  c->last_rx_ms = time_mono_ms();
  c->pinged = false;
}

/* ------------------------------------------------------------ presence --- */

typedef struct beat {
  ws_server *s;
  size_t dropped;
} beat;

/* Queues every local subscription of channel for the writer. */
static void beat_channel(void *arg, const char *channel, void *head) {
  beat *b = arg;
  for (sub *x = head; x != NULL; x = x->cnext)
    if (x->owner->authed &&
        !pwriter_refresh(b->s->pw, channel, x->owner->client_id,
                         x->owner->user_id))
      b->dropped++;
}

static lws_usec_t beat_interval(const ws_server *s) {
  return (lws_usec_t)(s->c.presence_ttl_ms / 3) * 1000;
}

/* Every local subscription's presence pushed out by another ttl, written
 * by the writer's thread (pwriter.h): this thread only copies ids. */
static void heartbeat(lws_sorted_usec_list_t *sul) {
  ws_server *s = lws_container_of(sul, ws_server, heartbeat);
  beat b = {s, 0};
  strmap_each(s->chans, beat_channel, &b);
  pwriter_flush(s->pw);
  if (b.dropped > 0) {
    char n[24];
    snprintf(n, sizeof n, "%zu", b.dropped);
    log_warn("presence heartbeat: writes dropped (queue full)", "count", n);
  }
  lws_sul_schedule(s->ctx, 0, &s->heartbeat, heartbeat, beat_interval(s));
}

/* ---------------------------------------------------------------- inbox --- */

/* A publication for c: written at once when nothing of c's waits (its
 * queue empty, libwebsockets holding no part of an earlier frame), else
 * queued behind what waits, so frames leave in order either way. Writing
 * here, in the pass that drains the inbox, spares each delivery a
 * writeable round: lws_callback_on_writable, a trip through the event
 * loop that reports the socket writeable, the callback, and the POLLOUT
 * interest set and cleared (with epoll, two epoll_ctl). The kernel's send
 * buffer takes the frame; a client that stops reading fills it, libwebsockets
 * keeps the rest of that frame and later ones queue here up to send_queue_bytes
 * (then 4008). */
static void deliver_to(ws_server *s, conn *c, msg *m) {
  if (c->close_code != 0) return;
  if (c->head != NULL || lws_partial_buffered(c->wsi)) {
    ws_conn_send(s, c, m);
    return;
  }
  if (!write_msg(s, c, m)) /* the socket failed: gone at the next pass */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* Connections holding a token the recheck found revoked: 4003 (one
 * that refreshed since holds another token and stays). A walk of every
 * connection per revoked token: revocations are rare. */
static void close_revoked(ws_server *s, inrev *r) {
  while (r != NULL) {
    inrev *next = r->next;
    for (conn *c = s->conns; c != NULL; c = c->next)
      if (c->tok == r->t) {
        log_info("token revoked: closing", "client_id", c->client_id);
        ws_conn_close(c, CLOSE_FORBIDDEN);
      }
    recheck_release(s->recheck, r->t);
    free(r);
    r = next;
  }
}

/* What one pass delivers. deliver_to writes (a send per subscriber), so
 * a backlog drained in one pass would keep the thread from its event
 * loop - from reading clients' frames and pongs - for as long as all of
 * it takes: a pass takes at most DRAIN_BATCH publications and, beyond
 * the first, only while their subscribers add up to DRAIN_DELIVERIES
 * (about a third of a second of sends on this machine), then the thread
 * wakes itself for the rest, polling in between. Within that, the more
 * publications a pass holds, the more frames each connection gets in it
 * and the fewer segments they take (corking, above): at 10,000
 * connections a held burst went from about 66,000 deliveries/s with 16
 * to 146,000 with 64 (docs/PERFORMANCE.md, "Realtime"). */
#define DRAIN_BATCH 64
#define DRAIN_DELIVERIES 65536

/* The pass's publications ps[0..n) of one channel, in order, to every
 * subscriber that has not seen them (see ws_ops.c, op_subscribe):
 * subscriber by subscriber, so a connection's frames of the pass are
 * written together (corked when there are several) and the channel's
 * subscriber list is walked once. */
static void deliver(ws_server *s, inpub *const *ps, size_t n) {
  enum channel_kind k = channel_kind_of(ps[0]->channel);
  metrics_add(s->m.pubs[k], (double)n);
  void **head = strmap_slot(s->chans, ps[0]->channel, false);
  for (sub *b = head != NULL ? *head : NULL; b != NULL; b = b->cnext) {
    conn *c = b->owner;
    if (!c->authed) continue;
    int fd = -1;
    for (size_t i = 0; i < n; i++) {
      const inpub *p = ps[i];
      if (!offsets_is_new(b->offset, b->epoch, p->offset, p->epoch)) continue;
      b->offset = p->offset;
      memcpy(b->epoch, p->epoch, sizeof b->epoch);
      metrics_inc(s->m.deliveries[k]);
      if (fd < 0 && i + 1 < n && c->head == NULL && c->close_code == 0) {
        fd = lws_get_socket_fd(c->wsi);
        set_cork(fd, 1);
      }
      deliver_to(s, c, p->m);
    }
    set_cork(fd, 0);
  }
}

/* Delivers the batch ps[0..n) channel by channel: each channel's
 * publications keep their order (the order that matters: offsets are per
 * channel), the first channel first. */
static void deliver_batch(ws_server *s, inpub **ps, size_t n) {
  inpub *same[DRAIN_BATCH];
  for (size_t i = 0; i < n; i++) {
    if (ps[i] == NULL) continue; /* delivered with an earlier channel */
    size_t k = 0;
    for (size_t j = i; j < n; j++)
      if (ps[j] != NULL && strcmp(ps[j]->channel, ps[i]->channel) == 0) {
        same[k++] = ps[j];
        if (j != i) ps[j] = NULL;
      }
    deliver(s, same, k);
  }
}

static void wake(ws_server *s);

static size_t subscribers(ws_server *s, const char *channel) {
  void **head = strmap_slot(s->chans, channel, false);
  size_t n = 0;
  for (sub *b = head != NULL ? *head : NULL; b != NULL; b = b->cnext) n++;
  return n;
}

/* Cuts the batch p (as take_batch took it) where its subscribers pass
 * DRAIN_DELIVERIES (never before the first publication) and puts the rest
 * back at the inbox's head, in order; *more is then true. Counted outside
 * the inbox's lock: the feed thread is never held up by it. */
static void trim_batch(ws_server *s, inpub *p, bool *more) {
  size_t load = subscribers(s, p->channel);
  inpub *last = p;
  while (last->next != NULL) {
    size_t k = subscribers(s, last->next->channel);
    if (load + k > DRAIN_DELIVERIES) break;
    load += k;
    last = last->next;
  }
  inpub *rest = last->next;
  if (rest == NULL) return;
  last->next = NULL;
  inpub *tail = rest;
  size_t n = 1;
  for (; tail->next != NULL; tail = tail->next) n++;
  pthread_mutex_lock(&s->mu);
  tail->next = s->in_head;
  if (s->in_head == NULL) s->in_tail = tail;
  s->in_head = rest;
  s->in_len += n;
  pthread_mutex_unlock(&s->mu);
  *more = true;
}

/* Takes up to DRAIN_BATCH publications off the inbox; *more: some stay. */
static inpub *take_batch(ws_server *s, bool *more) {
  inpub *head = s->in_head, *last = NULL;
  size_t n = 0;
  for (inpub *p = head; p != NULL && n < DRAIN_BATCH; p = p->next, n++)
    last = p;
  if (last == NULL) {
    *more = false;
    return NULL;
  }
  s->in_head = last->next;
  if (s->in_head == NULL) s->in_tail = NULL;
  s->in_len -= n;
  last->next = NULL;
  *more = s->in_head != NULL;
  return head;
}

static void drain_inbox(ws_server *s) {
  /* Cleared before the inbox is taken: what is handed in after the take
   * finds the flag clear and wakes the thread again (see wake()). */
  atomic_store(&s->wake_pending, false);
  bool more;
  pthread_mutex_lock(&s->mu);
  inpub *p = take_batch(s, &more);
  inrev *r = s->revoked;
  s->revoked = NULL;
  pthread_mutex_unlock(&s->mu);
  close_revoked(s, r);
  if (p != NULL) trim_batch(s, p, &more);
  inpub *batch[DRAIN_BATCH];
  size_t n = 0;
  for (inpub *q = p; q != NULL && n < DRAIN_BATCH; q = q->next) batch[n++] = q;
  deliver_batch(s, batch, n);
  while (p != NULL) {
    inpub *next = p->next;
    ws_msg_unref(p->m);
    free(p);
    p = next;
  }
  if (more) wake(s);
  if (atomic_load(&s->draining))
    for (conn *c = s->conns; c != NULL; c = c->next)
      ws_conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY);
}

/*
 * Waking the service thread. Each wake-up costs the thread a pipe write
 * and read and a trip through its event loop (with lws's poll() loop, a
 * poll() over every socket: the reason for this), and the bus hands in
 * publications one at a time (an order makes two or three, a Redis round
 * trip apart). wake() writes libwebsockets' cancel pipe only when no
 * wake-up is pending (wake_pending, cleared by drain_inbox just before it
 * takes the inbox: whatever is appended after the take sees it clear and
 * wakes again; whatever saw it set is in the inbox before the take). So
 * what is handed in while the thread is still on its way or busy
 * delivering shares the next pass, without a pipe write and a loop
 * iteration of its own. Tried and not kept: draining 2 ms after the wake-up (a
 * timer) to fold more (docs/PERFORMANCE.md, "Realtime": it cost more CPU per
 * delivery than it saved).
 */
static void wake(ws_server *s) {
  if (!atomic_exchange(&s->wake_pending, true)) lws_cancel_service(s->ctx);
}

int ws_server_publish(ws_server *s, const char *channel, int64_t offset,
                      const char *epoch, const char *text, size_t len) {
  if (atomic_load(&s->draining)) return ERR_CLOSED;
  if (strlen(channel) > CHANNEL_MAX || strlen(epoch) > OFFSETS_EPOCH_MAX)
    return ERR_INVAL;
  inpub *p = calloc(1, sizeof *p);
  msg *m = p == NULL ? NULL : ws_msg_new(text, len);
  if (m == NULL) {
    free(p);
    return ERR_NOMEM;
  }
  m->born_ns = mono_ns();
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
    metrics_inc(s->m.inbox_drops);
    free(m);
    free(p);
    return ERR_TOOBIG;
  }
  wake(s);
  return ERR_OK;
}

/* recheck_report_fn: from the recheck thread; r owns t's reference. */
static void revoked(void *arg, recheck_token *t) {
  ws_server *s = arg;
  inrev *r = calloc(1, sizeof *r);
  if (r == NULL) { /* the next pass reports it again */
    recheck_release(s->recheck, t);
    return;
  }
  r->t = t;
  pthread_mutex_lock(&s->mu);
  r->next = s->revoked;
  s->revoked = r;
  pthread_mutex_unlock(&s->mu);
  wake(s);
}

recheck *ws_server_recheck(ws_server *s) { return s->recheck; }

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
    return right_path(wsi) && address_has_room(s, wsi) ? 0 : 1;
  case LWS_CALLBACK_ESTABLISHED:
    conn_open(s, c, wsi);
    return 0;
  case LWS_CALLBACK_RECEIVE:
    heard(c);
    return receive(s, c, in, len);
  case LWS_CALLBACK_RECEIVE_PONG:
    heard(c);
    return 0;
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return writeable(s, c);
  case LWS_CALLBACK_CLOSED:
    conn_gone(s, c);
    return 0;
  case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
    drain_inbox(s);
    if (atomic_load(&s->stop) && s->loop != NULL)
      ev_break(s->loop, EVBREAK_ALL); /* service_thread returns */
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

/* No validity timer per connection (libwebsockets' default would ping
 * after 300 s): the sweep pings and hangs up (ping_idle_ms, above). */
static const lws_retry_bo_t kIdle = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
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

/* The service thread: libev's loop until ws_server_free asks it to stop
 * (the stop flag, then lws_cancel_service: EVENT_WAIT_CANCELLED breaks
 * the loop; a cancel written before ev_run starts leaves the pipe
 * readable, so it is seen at the first iteration), or lws's own poll()
 * loop when the libev plugin was not there (create_context). */
static void *service_thread(void *arg) {
  ws_server *s = arg;
  pthread_setname_np(pthread_self(), "rt-ws");
  if (s->loop != NULL) {
    if (!atomic_load(&s->stop)) ev_run(s->loop, 0);
    return NULL;
  }
  while (!atomic_load(&s->stop))
    if (lws_service(s->ctx, 0) < 0) break;
  return NULL;
}

static bool config_ok(const ws_config *c) {
  return c != NULL && c->addr != NULL && c->port > 0 && c->port < 65536 &&
         c->verifier != NULL && c->offsets != NULL && c->presence != NULL &&
         c->max_subscriptions > 0 && c->max_subscriptions <= UINT16_MAX &&
         c->send_queue_bytes > 0 && c->auth_timeout_ms > 0 &&
         c->ping_idle_ms > 0 && c->inbox_max > 0 && c->presence_ttl_ms >= 3 &&
         c->recheck_ms > 0;
}

static void init_metrics(ws_metrics *m) {
  const char *kind[] = {"kind"};
  metrics_family *subs = metrics_gauge("realtime_subscriptions",
                                       "Live subscriptions by channel kind", 1,
                                       kind),
                 *pubs = metrics_counter(
                     "realtime_publications_total",
                     "Publications handed to the WebSocket thread", 1, kind),
                 *dels = metrics_counter("realtime_deliveries_total",
                                         "Publications queued to a subscriber",
                                         1, kind);
  for (int k = 0; k < CHANNEL_KINDS; k++) {
    const char *v[] = {channel_kind_name((enum channel_kind)k)};
    m->subs[k] = metrics_child_get(subs, v);
    m->pubs[k] = metrics_child_get(pubs, v);
    m->deliveries[k] = metrics_child_get(dels, v);
  }
  m->connections =
      metrics_child_get(metrics_gauge("realtime_connections",
                                      "Open WebSocket connections", 0, NULL),
                        NULL);
  m->refused_addr = metrics_child_get(
      metrics_counter("realtime_refused_per_address_total",
                      "Upgrades refused: the address is at its cap", 0, NULL),
      NULL);
  m->slow_closes = metrics_child_get(
      metrics_counter("realtime_slow_closes_total",
                      "Connections closed 4008 (send queue full)", 0, NULL),
      NULL);
  m->inbox_drops = metrics_child_get(
      metrics_counter("realtime_inbox_drops_total",
                      "Publications refused: the inbox was full", 0, NULL),
      NULL);
  m->latency = metrics_child_get(
      metrics_histogram("realtime_deliver_latency_seconds",
                        "From a publication handed in to its write to a "
                        "client",
                        0, NULL, NULL, 0),
      NULL);
}

/*
 * The event loop: libev on epoll, a foreign loop this file owns
 * (ev_loop_new, run by service_thread, ev_break to stop), through
 * libwebsockets' libev plugin (Debian's libwebsockets-evlib-ev, which
 * libwebsockets-dev depends on; the runtime image installs it). lws 4.1's
 * built-in loop is poll(): every wake-up of the thread - each batch of
 * publications, each ping, each client frame - polled all sockets, which
 * at 10 000 connections was a third of the thread's CPU
 * (docs/PERFORMANCE.md, "Realtime"); epoll_wait costs the sockets that are
 * ready. Since publications are written in the drain pass (deliver_to),
 * a socket's POLLOUT interest changes only when it backs up, so epoll's
 * per-change epoll_ctl (which made an earlier try with libev no faster)
 * is rare. Without the plugin (lws_create_context fails with
 * LWS_SERVER_OPTION_LIBEV) the server falls back to the poll() loop and
 * says so: slower at many connections, the same behaviour.
 */
static struct lws_context *
create_on_libev(ws_server *s, struct lws_context_creation_info *info) {
  s->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
  if (s->loop == NULL) return NULL;
  s->loops[0] = s->loop;
  info->foreign_loops = s->loops;
  info->options |= LWS_SERVER_OPTION_LIBEV;
  struct lws_context *ctx = lws_create_context(info);
  info->foreign_loops = NULL;
  info->options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
  if (ctx == NULL) {
    ev_loop_destroy(s->loop);
    s->loop = NULL;
  }
  return ctx;
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
  s->ctx = create_on_libev(s, &info);
  if (s->ctx == NULL) {
    log_warn("cannot serve on libev (libwebsockets' plugin, package "
             "libwebsockets-evlib-ev, missing?): trying poll(), slower with "
             "many connections");
    s->ctx = lws_create_context(&info);
  }
  if (s->ctx == NULL) return ERR_UNAVAILABLE;
  lws_sul_schedule(s->ctx, 0, &s->heartbeat, heartbeat, beat_interval(s));
  lws_sul_schedule(s->ctx, 0, &s->sweep, sweep, (lws_usec_t)SWEEP_MS * 1000);
  return ERR_OK;
}

static int open_parts(ws_server *s) {
  init_metrics(&s->m);
  recheck_config rc = {.verifier = s->c.verifier,
                       .redis = s->c.redis,
                       .full_ms = s->c.recheck_full_ms,
                       .interval_ms = s->c.recheck_ms,
                       .report = revoked,
                       .arg = s};
  int rc_ = strmap_new(&s->chans);
  if (rc_ == ERR_OK) rc_ = strmap_new(&s->addrs);
  if (rc_ == ERR_OK) rc_ = recheck_start(&rc, &s->recheck);
  if (rc_ == ERR_OK)
    rc_ = pwriter_start(s->c.presence, PRESENCE_QUEUE_MAX, &s->pw);
  if (rc_ == ERR_OK) rc_ = create_context(s);
  return rc_;
}

int ws_server_start(const ws_config *c, ws_server **out) {
  *out = NULL;
  if (!config_ok(c)) return ERR_INVAL;
  ws_server *s = calloc(1, sizeof *s);
  if (s == NULL) return ERR_NOMEM;
  s->c = *c;
  pthread_mutex_init(&s->mu, NULL);
  int rc = open_parts(s);
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

/* Shutdown order. Three kinds of thread besides the caller's touch the
 * libwebsockets context: the service thread (lws_service), the recheck
 * thread (revoked() wakes the service thread with lws_cancel_service) and
 * the bus feeds' threads (ws_server_publish, likewise). The feeds are the
 * caller's to stop first (ws.h; main.c frees them before this). The
 * service thread is joined, then the recheck thread is stopped and joined
 * (recheck_stop: no report runs or starts after it), and only then is the
 * context destroyed, so no thread can reach lws_cancel_service on a
 * destroyed context. The recheck's registry outlives its thread: the
 * connections lws_context_destroy closes release their tokens into it.
 * pwriter's thread never touches lws (it only writes Redis). */
void ws_server_free(ws_server *s, int64_t grace_ms) {
  if (s == NULL) return;
  atomic_store(&s->draining, true);
  if (s->thread_started) {
    wait_closed(s, grace_ms);
    atomic_store(&s->stop, true);
    lws_cancel_service(s->ctx);
    pthread_join(s->thread, NULL);
  }
  recheck_stop(s->recheck); /* before the context: revoked() wakes it */
  if (s->ctx != NULL) lws_context_destroy(s->ctx);
  if (s->loop != NULL) ev_loop_destroy(s->loop); /* after lws let go of it */
  close_revoked(s, s->revoked); /* no connection left: only releases */
  s->revoked = NULL;
  recheck_free(s->recheck); /* after the connections: they release theirs */
  pwriter_free(s->pw);      /* after the connections: they queue their leaves */
  for (inpub *p = s->in_head, *next; p != NULL; p = next) {
    next = p->next;
    free(p->m);
    free(p);
  }
  strmap_free(s->chans);
  strmap_free(s->addrs);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
