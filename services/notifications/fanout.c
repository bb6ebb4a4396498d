/*
 * fanout.c - bus events to deliveries (see fanout.h). Runs on the bus
 * subscriber's receive thread.
 *
 * The subscriber hands over runs of events (a Replay page when catching
 * up or healing a gap, or one live event): each is rendered and its
 * recipients found, then the whole run is stored in one transaction
 * (store_fanout_batch) and its jobs pushed to the stream in one round
 * trip - a page costs about what one event used to. If the database
 * refuses the run (one event's data breaks a constraint), it is stored
 * event by event instead, so the bad one can be skipped as before.
 */
#include "services/notifications/fanout.h"

#include <stdlib.h>
#include <string.h>

#include "libs/bus/bus.h"
#include "libs/obs/log.h"
#include "services/notifications/body.h"
#include "services/notifications/inbox.h"

#define REPLAY_DEADLINE_MS 2000
#define IDLE_CHECK_MS 5000
#define BODY_MAX (1024 * 1024) /* deliveries_body_length, 0001_init.sql */

struct fanout {
  fanout_config c;
  bus_subscriber *sub;
};

static int backfill(void *arg, const char *source, uint64_t after_seq,
                    uint64_t up_to, uint32_t limit, bus_backfill *out) {
  (void)up_to;
  fanout *f = arg;
  return bus_replay_fetch(f->c.replay, source, after_seq, limit,
                          REPLAY_DEADLINE_MS, out);
}

/* The event's notifications, on the channels its tenant's settings turn
 * on (inbox_channels: one settings read for the event types that notify
 * people, none for the others); an event whose payload does not decode
 * notifies no one (logged), auth unreachable refuses the event. */
static int notifications_of(fanout *f, const Rpc__V1__Event *ev,
                            inbox_batch *inbox) {
  store_channels ch;
  int rc =
      inbox_channels(f->c.store, f->c.settings, ev, f->c.email, f->c.sms, &ch);
  if (rc == ERR_OK) rc = inbox_for_event(ev, f->c.auth, &ch, inbox);
  if (rc == ERR_PROTO) {
    log_warn("event payload does not decode: no notification", "id", ev->id);
    rc = ERR_OK;
  }
  return rc;
}

/* What one event makes, before it is stored. */
typedef struct work {
  char *body;        /* the webhook body; NULL: a type webhooks skip */
  const char *tid;   /* "" when only the position moves */
  inbox_batch inbox; /* notifications (in-app unless inbox.in_app is false) */
  store_message *mails; /* e-mails and SMS */
  size_t nmails;
} work;

static void work_free(work *w) {
  free(w->body);
  free(w->mails);
  inbox_batch_free(&w->inbox);
}

/* Renders ev and finds who it notifies. An error refuses the event (the
 * tracker delivers it again later). */
static int prepare(fanout *f, const Rpc__V1__Event *ev, work *w) {
  memset(w, 0, sizeof *w);
  int rc = body_for_event(ev, &w->body);
  if (rc == ERR_NOMEM) return rc;
  if (rc == ERR_OK && strlen(w->body) > BODY_MAX) rc = ERR_TOOBIG;
  /* A type webhooks do not carry, or one that does not decode: only the
   * position moves. */
  w->tid = rc == ERR_OK ? ev->tenant_id : "";
  if (rc != ERR_OK && rc != ERR_NOTFOUND)
    log_warn("event not rendered", "id", ev->id, "error", err_str(rc));
  if (w->tid[0] == '\0') return ERR_OK;
  rc = notifications_of(f, ev, &w->inbox);
  if (rc != ERR_OK) {
    log_warn("no recipients for an event; retrying", "id", ev->id);
    return rc;
  }
  return inbox_messages(&w->inbox, &w->mails, &w->nmails);
}

/* The store's view of a prepared event (strings borrowed). */
static store_fanout_in input_of(const Rpc__V1__Event *ev, const work *w) {
  return (store_fanout_in){.tid = w->tid,
                           .event_id = ev->id,
                           .type = ev->type,
                           .body = w->body ? w->body : "",
                           .source = ev->source,
                           .seq = ev->seq,
                           .inbox = w->inbox.v,
                           .ninbox = w->inbox.in_app ? w->inbox.n : 0,
                           .messages = w->mails,
                           .nmessages = w->nmails};
}

/* Stores w in one transaction; an event the database refuses is skipped
 * (only the position moves). */
static int commit(fanout *f, const Rpc__V1__Event *ev, const work *w,
                  store_job **jobs, size_t *n, size_t *added) {
  store_fanout_in in = input_of(ev, w);
  int rc = store_fanout(f->c.store, &in, jobs, n, added);
  if (rc != ERR_INVAL && rc != ERR_EXISTS) return rc;
  /* The database refuses this event's data (a malformed id, a CHECK):
   * retrying cannot help and would hold every later event of orders
   * behind it. Skip it, loudly, and move the position past it. */
  log_error("event refused by the database; skipped", "id", ev->id, "type",
            ev->type, "error", err_str(rc));
  store_fanout_in skip = {.tid = "",
                          .event_id = ev->id,
                          .type = ev->type,
                          .body = "",
                          .source = ev->source,
                          .seq = ev->seq};
  return store_fanout(f->c.store, &skip, jobs, n, added);
}

/* After a commit: the jobs to the stream, the relay kicked. */
static void after_commit(fanout *f, store_job *jobs, size_t n, size_t added) {
  if (n > 0) (void)queue_push(f->c.queue, jobs, n); /* else: the sweep */
  if (added > 0) outbox_kick(f->c.events);
  free(jobs);
}

/* w[0..n) of ev one transaction each (commit: skips what the database
 * refuses); *taken counts the prefix stored. */
static int commit_each(fanout *f, const Rpc__V1__Event *const *ev,
                       const work *w, size_t n, size_t *taken) {
  for (*taken = 0; *taken < n; (*taken)++) {
    store_job *jobs = NULL;
    size_t nj = 0, added = 0;
    int rc = commit(f, ev[*taken], &w[*taken], &jobs, &nj, &added);
    if (rc != ERR_OK) return rc;
    after_commit(f, jobs, nj, added);
  }
  return ERR_OK;
}

/* w[0..n) of ev in one transaction (store_fanout_batch); when the
 * database refuses one of them, event by event (commit_each). */
static int commit_batch(fanout *f, const Rpc__V1__Event *const *ev,
                        const work *w, size_t n, size_t *taken) {
  store_fanout_in *in = calloc(n, sizeof *in);
  if (in == NULL) return ERR_NOMEM;
  for (size_t i = 0; i < n; i++) in[i] = input_of(ev[i], &w[i]);
  store_job *jobs = NULL;
  size_t nj = 0, added = 0;
  int rc = store_fanout_batch(f->c.store, in, n, &jobs, &nj, &added);
  free(in);
  if (rc == ERR_OK) {
    *taken = n;
    after_commit(f, jobs, nj, added);
    return ERR_OK;
  }
  if (rc != ERR_INVAL && rc != ERR_EXISTS) return rc;
  return commit_each(f, ev, w, n, taken);
}

/* A run of events (bus_batch_fn): each prepared, then stored together. An
 * event that cannot be prepared (auth unreachable) ends the run there:
 * the ones before it are stored, it is refused and comes again. */
static int on_batch(void *arg, const Rpc__V1__Event *const *ev, size_t n,
                    size_t *taken) {
  fanout *f = arg;
  work *w = calloc(n, sizeof *w);
  if (w == NULL) return ERR_NOMEM;
  size_t m = 0;
  int rc = ERR_OK;
  for (; m < n && rc == ERR_OK; m++) rc = prepare(f, ev[m], &w[m]);
  if (rc != ERR_OK) m--; /* w[m] is the one that failed */
  int sc = m > 0 ? commit_batch(f, ev, w, m, taken) : ERR_OK;
  for (size_t i = 0; i <= m && i < n; i++) work_free(&w[i]);
  free(w);
  if (sc != ERR_OK) rc = sc;
  if (rc != ERR_OK)
    log_warn("events not fanned out; retrying", "id", ev[*taken]->id, "error",
             err_str(rc));
  return rc;
}

static int subscribe_all(bus_subscriber *s) {
  static const char *const kFamilies[] = {"orders.", "kitchen.", "tables."};
  for (size_t i = 0; i < sizeof kFamilies / sizeof kFamilies[0]; i++) {
    int rc = bus_subscribe_prefix(s, kFamilies[i]);
    if (rc != ERR_OK) return rc;
  }
  return ERR_OK;
}

static int set_position(fanout *f) {
  uint64_t seq = 0;
  int rc = store_position(f->c.store, FANOUT_SOURCE, &seq);
  if (rc != ERR_OK || seq == 0) {
    if (rc == ERR_OK) log_info("no bus position yet: starting from live");
    return rc;
  }
  return bus_subscriber_set_position(f->sub, FANOUT_SOURCE, seq);
}

int fanout_start(const fanout_config *c, fanout **out) {
  *out = NULL;
  fanout *f = calloc(1, sizeof *f);
  if (f == NULL) return ERR_NOMEM;
  f->c = *c;
  bus_subscriber_options o;
  bus_subscriber_options_init(&o);
  o.tracker.backfill = backfill;
  o.tracker.backfill_arg = f;
  o.tracker.idle_check_ms = IDLE_CHECK_MS;
  int rc = bus_subscriber_new_batch(c->address, on_batch, f, &o, &f->sub);
  if (rc == ERR_OK) rc = subscribe_all(f->sub);
  if (rc == ERR_OK) rc = set_position(f);
  if (rc == ERR_OK) rc = bus_subscriber_start(f->sub);
  if (rc != ERR_OK) {
    fanout_free(f);
    return rc;
  }
  *out = f;
  return ERR_OK;
}

void fanout_free(fanout *f) {
  if (f == NULL) return;
  bus_subscriber_free(f->sub);
  free(f);
}
