/*
 * outbox.c - the tenants.changed relay and the Replay RPC (see outbox.h).
 *
 * One thread per process sleeps on a condition variable (kicked after
 * commits, or poll_ms), then sequences up to BATCH rows at a time through
 * store_outbox_sequence and publishes them in seq order. Several replicas
 * relaying at once is harmless: the sequencing transaction takes an
 * advisory lock, so each row gets one seq, and a subscriber receiving
 * events from two publishers drops what it has already seen.
 */
#include "services/tenants/outbox.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/obs/log.h"
#include "proto/tenants/v1/tenants.pb-c.h"

#define BATCH 64

struct outbox {
  store *st;
  outbox_publish_fn publish;
  void *arg;
  int64_t poll_ms;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool kicked, stop, started;
  pthread_t thread;
};

int outbox_new(store *st, outbox_publish_fn publish, void *arg,
               int64_t poll_ms, outbox **out) {
  *out = NULL;
  if (st == NULL || poll_ms < 0)
    return ERR_INVAL;
  outbox *ob = calloc(1, sizeof *ob);
  if (ob == NULL)
    return ERR_NOMEM;
  ob->st = st;
  ob->publish = publish;
  ob->arg = arg;
  ob->poll_ms = poll_ms ? poll_ms : 1000;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int bad = pthread_mutex_init(&ob->mu, NULL) != 0;
  if (!bad && pthread_cond_init(&ob->cv, &ca) != 0) {
    pthread_mutex_destroy(&ob->mu);
    bad = 1;
  }
  pthread_condattr_destroy(&ca);
  if (bad) {
    free(ob);
    return ERR_INTERNAL;
  }
  *out = ob;
  return ERR_OK;
}

static void row_to_event(const store_outbox_row *r, Rpc__V1__Event *ev) {
  rpc__v1__event__init(ev);
  ev->id = (char *)r->event_id;
  ev->type = (char *)r->type;
  ev->tenant_id = (char *)r->tenant_id;
  ev->source = OUTBOX_SOURCE;
  ev->seq = r->seq;
  ev->time_unix_ms = r->time_unix_ms;
  ev->payload.data = r->payload;
  ev->payload.len = r->len;
  ev->topic = (char *)r->topic;
}

int outbox_relay_once(outbox *ob, size_t *published) {
  if (published != NULL)
    *published = 0;
  store_outbox_row rows[BATCH];
  for (;;) {
    size_t n = 0;
    int rc = store_outbox_sequence(ob->st, rows, BATCH, &n);
    if (rc != ERR_OK)
      return rc;
    for (size_t i = 0; i < n; i++) {
      if (ob->publish == NULL)
        continue;
      Rpc__V1__Event ev;
      row_to_event(&rows[i], &ev);
      int prc = ob->publish(ob->arg, &ev);
      if (prc != ERR_OK)
        log_warn("publishing an event failed; subscribers will replay it",
                 "error", err_str(prc));
    }
    store_outbox_rows_free(rows, n);
    if (published != NULL)
      *published += n;
    if (n < BATCH)
      return ERR_OK;
  }
}

static void *relay_main(void *arg) {
  outbox *ob = arg;
  bool failing = false;
  pthread_mutex_lock(&ob->mu);
  while (!ob->stop) {
    ob->kicked = false;
    pthread_mutex_unlock(&ob->mu);
    int rc = outbox_relay_once(ob, NULL);
    if (rc != ERR_OK && !failing)
      log_warn("outbox relay failed; retrying", "error", err_str(rc));
    failing = rc != ERR_OK;
    pthread_mutex_lock(&ob->mu);
    if (ob->kicked || ob->stop)
      continue;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ob->poll_ms / 1000;
    ts.tv_nsec += (ob->poll_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    while (!ob->kicked && !ob->stop)
      if (pthread_cond_timedwait(&ob->cv, &ob->mu, &ts) != 0)
        break;
  }
  pthread_mutex_unlock(&ob->mu);
  return NULL;
}

int outbox_start(outbox *ob) {
  if (ob == NULL || ob->started)
    return ERR_INVAL;
  if (pthread_create(&ob->thread, NULL, relay_main, ob) != 0)
    return ERR_INTERNAL;
  ob->started = true;
  return ERR_OK;
}

void outbox_kick(outbox *ob) {
  if (ob == NULL)
    return;
  pthread_mutex_lock(&ob->mu);
  ob->kicked = true;
  pthread_cond_signal(&ob->cv);
  pthread_mutex_unlock(&ob->mu);
}

void outbox_free(outbox *ob) {
  if (ob == NULL)
    return;
  if (ob->started) {
    pthread_mutex_lock(&ob->mu);
    ob->stop = true;
    pthread_cond_signal(&ob->cv);
    pthread_mutex_unlock(&ob->mu);
    pthread_join(ob->thread, NULL);
  }
  pthread_cond_destroy(&ob->cv);
  pthread_mutex_destroy(&ob->mu);
  free(ob);
}

/* ------------------------------------------------------------- Replay --- */

static void replay(void *arg, const rpc_call *call, rpc_reply *reply) {
  outbox *ob = arg;
  Rpc__V1__ReplayRequest *req =
      rpc__v1__replay_request__unpack(NULL, call->payload_len, call->payload);
  if (req == NULL) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "undecodable request");
    return;
  }
  uint32_t limit = req->limit == 0 ? OUTBOX_REPLAY_DEFAULT : req->limit;
  if (limit > OUTBOX_REPLAY_MAX)
    limit = OUTBOX_REPLAY_MAX;
  uint64_t after = req->after_seq;
  rpc__v1__replay_request__free_unpacked(req, NULL);

  store_outbox_row *rows = calloc(limit, sizeof *rows);
  Rpc__V1__Event *evs = calloc(limit, sizeof *evs);
  Rpc__V1__Event **ptrs = calloc(limit, sizeof *ptrs);
  size_t n = 0;
  uint64_t last = 0;
  if (rows == NULL || evs == NULL || ptrs == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  int rc = store_outbox_replay(ob->st, after, rows, limit, &n, &last);
  if (rc == ERR_NOTFOUND) {
    rpc_reply_status(reply, RPC_NOT_FOUND, "events after %llu were pruned",
                     (unsigned long long)after);
    goto out;
  }
  if (rc != ERR_OK) {
    rpc_reply_status(reply, rpc_code_from_err(rc), "cannot read events");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    row_to_event(&rows[i], &evs[i]);
    ptrs[i] = &evs[i];
  }
  Rpc__V1__ReplayResponse resp = RPC__V1__REPLAY_RESPONSE__INIT;
  resp.n_events = n;
  resp.events = ptrs;
  resp.last_seq = last;
  if (rpc_reply_set_message(reply, &resp.base) != ERR_OK)
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "answer too large");
out:
  if (rows != NULL)
    store_outbox_rows_free(rows, n);
  free(rows);
  free(evs);
  free(ptrs);
}

int outbox_register(outbox *ob, rpc_server *srv) {
  return rpc_server_register(srv, OUTBOX_REPLAY_METHOD, replay, ob);
}

/* ------------------------------------------------------------- events --- */

int outbox_changed_event(const char *change, const char *tenant_id,
                         const char *slug, const char *status,
                         const char *const *hosts, size_t nhosts,
                         store_event *out) {
  memset(out, 0, sizeof *out);
  Tenants__V1__TenantChanged tc = TENANTS__V1__TENANT_CHANGED__INIT;
  tc.tenant_id = (char *)tenant_id;
  tc.slug = (char *)(slug ? slug : "");
  tc.status = (char *)(status ? status : "");
  tc.change = (char *)change;
  tc.n_hosts = nhosts;
  tc.hosts = (char **)hosts;
  size_t len = tenants__v1__tenant_changed__get_packed_size(&tc);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL)
    return ERR_NOMEM;
  tenants__v1__tenant_changed__pack(&tc, buf);
  out->type = "TenantChanged";
  out->payload = buf;
  out->len = len;
  return ERR_OK;
}

void outbox_event_clear(store_event *ev) {
  if (ev == NULL)
    return;
  free((void *)ev->payload);
  ev->payload = NULL;
  ev->len = 0;
}
