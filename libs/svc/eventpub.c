/*
 * eventpub.c - outbox relay + bus publisher (see eventpub.h).
 *
 * The relay calls publish() with e as its argument; e->bus is set before
 * the relay thread can start (eventpub_start), so publish never sees a
 * half-built eventpub. Freeing goes the other way round: the relay's
 * thread is joined before the publisher it uses is closed.
 */
#include "libs/svc/eventpub.h"

#include <stdbool.h>
#include <stdlib.h>

#include "libs/bus/bus.h"
#include "libs/obs/log.h"

struct eventpub {
  eventpub_options o;
  outbox *ob;
  bus_publisher *bus; /* NULL without a bus URL */
};

static int publish(void *arg, const Rpc__V1__Event *ev) {
  eventpub *e = arg;
  if (e->o.before_publish != NULL) e->o.before_publish(e->o.hook_arg);
  return bus_publish_event(e->bus, ev);
}

int eventpub_open(db_pool *db, const eventpub_options *o, eventpub **out) {
  *out = NULL;
  if (db == NULL || o == NULL) return ERR_INVAL;
  eventpub *e = calloc(1, sizeof *e);
  if (e == NULL) return ERR_NOMEM;
  e->o = *o;
  bool bus = o->bus_url != NULL && o->bus_url[0] != '\0';
  outbox_options oo = {
      .schema = o->schema,
      .source = o->source,
      .publish = bus ? publish : NULL,
      .publish_arg = e,
      .poll_ms = o->poll_ms,
      .keep_ms = o->keep_ms,
  };
  int rc = outbox_new(db, &oo, &e->ob);
  if (rc != ERR_OK) {
    log_error("cannot create the outbox relay", "error", err_str(rc));
    goto err;
  }
  if (!bus) {
    log_warn("BUS_LISTEN not set: events only through Replay", "source",
             o->source);
    *out = e;
    return ERR_OK;
  }
  uint64_t last = 0;
  rc = outbox_last_seq(e->ob, &last);
  if (rc == ERR_OK)
    rc = bus_publisher_new(o->bus_url, o->source, last, NULL, &e->bus);
  if (rc != ERR_OK) {
    log_error("cannot start the event publisher", "url", o->bus_url, "error",
              err_str(rc));
    goto err;
  }
  *out = e;
  return ERR_OK;
err:
  eventpub_free(e);
  return rc;
}

outbox *eventpub_outbox(const eventpub *e) { return e->ob; }

int eventpub_start(eventpub *e, rpc_server *srv) {
  int rc = outbox_register_replay(e->ob, srv);
  if (rc == ERR_OK) rc = outbox_start(e->ob);
  return rc;
}

void eventpub_free(eventpub *e) {
  if (e == NULL) return;
  outbox_free(e->ob);
  bus_publisher_free(e->bus);
  free(e);
}
