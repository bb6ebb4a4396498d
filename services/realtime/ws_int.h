/*
 * ws_int.h - what ws.c (libwebsockets glue, delivery, lifecycle) and
 * ws_ops.c (the client's ops) share. Internal to the realtime service:
 * everything here belongs to the libwebsockets thread.
 */
#ifndef REALTIME_WS_INT_H
#define REALTIME_WS_INT_H

#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "libs/base/uuid.h"
#include "libs/obs/metrics.h"
#include "libs/paseto/claims.h"
#include "services/realtime/channel.h"
#include "services/realtime/pwriter.h"
#include "services/realtime/recheck.h"
#include "services/realtime/strmap.h"
#include "services/realtime/ws.h"

#define CLOSE_AUTH 4001
#define CLOSE_FORBIDDEN 4003
#define CLOSE_SLOW 4008
#define ROLE_MAX 32
#define ADDR_MAX 48 /* INET6_ADDRSTRLEN (46) and a NUL */

/* A rendered message, shared by every queue that holds it. */
typedef struct msg {
  int refs;        /* service thread only */
  int64_t born_ns; /* a publication: when it was handed in; else 0 */
  enum channel_kind kind;
  size_t len;
  unsigned char buf[]; /* LWS_PRE bytes of headroom, then the text */
} msg;

typedef struct qnode {
  struct qnode *next;
  msg *m;
} qnode;

struct conn;

/* A subscription and what its client has seen of the channel: the offset
 * and epoch of the "subscribed" answer (which covers the recovered
 * publications), then of each publication sent. Linked into the
 * channel's list in the server's index; one allocation each (the index
 * points at it, so it never moves). */
typedef struct sub {
  int64_t offset;
  struct conn *owner;
  struct sub *cprev, *cnext; /* the channel's subscriptions */
  char epoch[OFFSETS_EPOCH_MAX + 1];
  char channel[]; /* NUL-terminated */
} sub;

typedef struct conn {
  struct lws *wsi;
  struct conn *prev, *next; /* the server's live connections */
  recheck_token *tok;       /* the token, held for the recheck */
  bool authed;
  char client_id[UUID_STR_LEN + 1];
  char user_id[UUID_STR_LEN + 1]; /* verified: at most that long */
  char tenant_id[UUID_STR_LEN + 1];
  char role[ROLE_MAX];
  char addr[ADDR_MAX]; /* remote address: the per-address cap's key */
  int64_t exp_ms;      /* the token's expiry; before auth the auth deadline */
  int64_t last_rx_ms;  /* monotonic: the last frame (message or pong) */
  bool ping_due;       /* the sweep asks the writeable callback for a ping */
  bool pinged;         /* a ping went out since last_rx_ms */
  sub **subs;          /* nsubs of cap, grown on demand (at most the cap) */
  uint16_t nsubs, subs_cap;
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

/* A token the recheck found revoked, waiting for the thread. */
typedef struct inrev {
  struct inrev *next;
  recheck_token *t; /* one reference, released once handled */
} inrev;

typedef struct ws_metrics {
  metrics_child *connections, *refused_addr, *slow_closes, *inbox_drops,
      *latency;
  metrics_child *subs[CHANNEL_KINDS], *pubs[CHANNEL_KINDS],
      *deliveries[CHANNEL_KINDS];
} ws_metrics;

struct ws_server {
  ws_config c;
  struct lws_context *ctx;
  struct ev_loop *loop; /* the service thread's (libev, epoll) */
  void *loops[1];       /* lws's foreign_loops: {loop} */
  pthread_t thread;
  bool thread_started;
  atomic_bool draining, stop;
  conn *conns;   /* service thread only */
  strmap *chans; /* channel -> its first sub; service thread only */
  strmap *addrs; /* remote address -> connections (as intptr_t) */
  recheck *recheck;
  pwriter *pw; /* the heartbeat and the leaves of closed connections */
  lws_sorted_usec_list_t heartbeat;
  lws_sorted_usec_list_t sweep; /* expiry, auth deadline, ping, hangup */
  int64_t last_sweep_ms;        /* monotonic; service thread only */
  atomic_bool wake_pending;     /* a wake-up is on its way (ws.c, wake) */
  ws_metrics m;
  atomic_size_t nconns;
  pthread_mutex_t mu; /* guards the inbox and the revoked list */
  inpub *in_head, *in_tail;
  size_t in_len;
  inrev *revoked;
};

/* ws.c */
msg *ws_msg_new(const char *text, size_t len);
void ws_msg_unref(msg *m);
void ws_conn_close(conn *c, int code);
void ws_conn_send(ws_server *s, conn *c, msg *m);
void ws_send_json(ws_server *s, conn *c, json_t *v); /* consumes v */
void ws_send_error(ws_server *s, conn *c, json_t *id, const char *code,
                   const char *message);
json_t *ws_with_id(json_t *v, json_t *id);
sub *ws_find_sub(ws_server *s, conn *c, const char *channel);
int ws_add_sub(ws_server *s, conn *c, const char *channel, int64_t offset,
               const char *epoch) WARN_UNUSED;
/* Removes b; its presence at once (unsubscribe: the answer follows a
 * removed presence) or through the writer (a connection gone). */
void ws_remove_sub(ws_server *s, conn *c, sub *b, bool presence_now);

/* ws_ops.c */
void ws_authenticate(ws_server *s, conn *c, const char *token, json_t *id);
void ws_handle_message(ws_server *s, conn *c, const char *text, size_t len);

#endif
