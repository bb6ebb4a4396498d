/*
 * bus_pub.c - the publisher: one nng pub0 socket, events numbered per
 * source, sent in the order of the calls.
 *
 * Design. A single mutex covers "choose the seq, build the frame, hand it
 * to nng", so the wire order is the seq order even with many publishing
 * threads (a subscriber would otherwise see harmless but costly
 * reorderings as gaps). pub0 never blocks a sender: it queues up to
 * send_buffer messages per subscriber and drops the oldest for a slow
 * one, so holding the lock across nng_sendmsg is cheap. The frame is
 * packed straight into the nng message body: one allocation, no copy.
 */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/bus/bus.h"
#include "libs/bus/bus_internal.h"

struct bus_publisher {
  nng_socket sock;
  nng_listener listener;
  char source[BUS_MAX_SOURCE_LEN + 1];
  size_t max_msg_bytes;
  int port;
  pthread_mutex_t mu;
  uint64_t last_seq; /* under mu */
  bool closed;       /* under mu */
  metrics_child *m_published;
};

int bus_publisher_new(const char *url, const char *source, uint64_t last_seq,
                      const bus_publisher_options *opts, bus_publisher **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (url == NULL || !bus_name_ok(source, BUS_MAX_SOURCE_LEN)) return ERR_INVAL;
  size_t max_msg = BUS_DEFAULT_MAX_MSG_BYTES;
  int sendbuf = 16;
  if (opts != NULL) {
    if (opts->max_msg_bytes > (size_t)INT32_MAX || opts->send_buffer < 0 ||
        opts->send_buffer > 8192) {
      return ERR_INVAL;
    }
    if (opts->max_msg_bytes) max_msg = opts->max_msg_bytes;
    if (opts->send_buffer) sendbuf = opts->send_buffer;
  }
  bus_publisher *p = calloc(1, sizeof(*p));
  if (p == NULL) return ERR_NOMEM;
  str_copy(p->source, source, sizeof(p->source));
  p->max_msg_bytes = max_msg;
  p->last_seq = last_seq;
  p->port = -1;
  if (pthread_mutex_init(&p->mu, NULL) != 0) {
    free(p);
    return ERR_INTERNAL;
  }
  int err = ERR_INTERNAL;
  int rv = nng_pub0_open(&p->sock);
  if (rv != 0) goto err_mu;
  (void)nng_socket_set_int(p->sock, NNG_OPT_SENDBUF, sendbuf);
  rv = nng_listener_create(&p->listener, p->sock, url);
  if (rv != 0) {
    err = (rv == NNG_ENOMEM) ? ERR_NOMEM : ERR_INVAL;
    goto err_sock;
  }
  rv = nng_listener_start(p->listener, 0);
  if (rv != 0) {
    err = (rv == NNG_EADDRINUSE)                       ? ERR_UNAVAILABLE
          : (rv == NNG_ENOMEM)                         ? ERR_NOMEM
          : (rv == NNG_EADDRINVAL || rv == NNG_EINVAL) ? ERR_INVAL
                                                       : ERR_UNAVAILABLE;
    goto err_sock;
  }
  int port = -1;
  if (nng_listener_get_int(p->listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
    p->port = port;
  }
  p->m_published = bus_metrics_source(bus_metrics_get()->published, p->source);
  *out = p;
  return ERR_OK;
err_sock:
  nng_close(p->sock);
err_mu:
  pthread_mutex_destroy(&p->mu);
  free(p);
  return err;
}

void bus_publisher_free(bus_publisher *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  p->closed = true;
  pthread_mutex_unlock(&p->mu);
  nng_close(p->sock);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

int bus_publisher_port(const bus_publisher *p) {
  return p == NULL ? -1 : p->port;
}

uint64_t bus_publisher_last_seq(bus_publisher *p) {
  if (p == NULL) return 0;
  pthread_mutex_lock(&p->mu);
  uint64_t s = p->last_seq;
  pthread_mutex_unlock(&p->mu);
  return s;
}

/* Frames and sends a validated ev. Caller holds p->mu. */
static int send_locked(bus_publisher *p, const Rpc__V1__Event *ev) {
  if (p->closed) return ERR_CLOSED;
  size_t n = bus_frame_size(ev);
  if (n > p->max_msg_bytes) return ERR_TOOBIG;
  nng_msg *m = NULL;
  if (nng_msg_alloc(&m, n) != 0) return ERR_NOMEM;
  bus_frame_write(ev, nng_msg_body(m));
  int rv = nng_sendmsg(p->sock, m, 0);
  if (rv != 0) {
    nng_msg_free(m); /* a failed send leaves the message with us */
    return rv == NNG_ECLOSED  ? ERR_CLOSED
           : rv == NNG_ENOMEM ? ERR_NOMEM
                              : ERR_INTERNAL;
  }
  if (ev->seq > p->last_seq) p->last_seq = ev->seq;
  metrics_inc(p->m_published);
  return ERR_OK;
}

int bus_publish_event(bus_publisher *p, const Rpc__V1__Event *ev) {
  if (p == NULL || ev == NULL) return ERR_INVAL;
  /* A shallow copy lets "" stand for the publisher's source without
   * touching the caller's message. */
  Rpc__V1__Event e = *ev;
  if (e.source == NULL || e.source[0] == '\0') e.source = p->source;
  if (e.type == NULL) e.type = "";
  if (e.tenant_id == NULL) e.tenant_id = "";
  if (bus_event_validate(&e) != ERR_OK || strcmp(e.source, p->source) != 0) {
    return ERR_INVAL;
  }
  pthread_mutex_lock(&p->mu);
  int rc = send_locked(p, &e);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

int bus_publish(bus_publisher *p, const char *topic, const char *type,
                const char *tenant_id, const void *payload, size_t len,
                uint64_t *seq_out) {
  if (p == NULL || (payload == NULL && len > 0)) return ERR_INVAL;
  char id[UUID_STR_LEN + 1];
  uuid_v7_str(id);
  Rpc__V1__Event e = RPC__V1__EVENT__INIT;
  e.id = id;
  e.type = (char *)(type != NULL ? type : "");
  e.tenant_id = (char *)(tenant_id != NULL ? tenant_id : "");
  e.source = p->source;
  e.time_unix_ms = time_now_ms();
  e.payload.data = (uint8_t *)payload;
  e.payload.len = len;
  e.topic = (char *)topic;
  e.seq = 1; /* for validation; the real one is chosen under the lock */
  if (bus_event_validate(&e) != ERR_OK) return ERR_INVAL;
  pthread_mutex_lock(&p->mu);
  e.seq = p->last_seq + 1;
  int rc = send_locked(p, &e);
  pthread_mutex_unlock(&p->mu);
  if (rc == ERR_OK && seq_out != NULL) *seq_out = e.seq;
  return rc;
}
