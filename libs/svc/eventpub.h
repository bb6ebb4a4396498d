/*
 * eventpub.h - a service's outgoing events: libs/outbox's relay and the
 * libs/bus publisher it hands committed events to, wired the one way that
 * keeps the bus sequence whole.
 *
 * The outbox owns the sequence (its rows are numbered in the database, so
 * any replica may publish and a restart continues where the last one
 * stopped). The publisher is therefore created after the outbox and
 * starts from the outbox's last seq, and the relay starts only once the
 * service has registered its handlers and the Replay method:
 *
 *   eventpub_options o = {.schema = "orders", .source = "orders",
 *                         .bus_url = cfg_str(c, "BUS_LISTEN"),
 *                         .poll_ms = ..., .keep_ms = ...};
 *   eventpub *ev;
 *   if (eventpub_open(svc_db(s), &o, &ev) != ERR_OK) ...
 *   ... handlers get eventpub_outbox(ev) (outbox_append, outbox_kick) ...
 *   if (eventpub_start(ev, svc_rpc(s)) != ERR_OK) ...
 *   ... fini: eventpub_free(ev);
 *
 * Without a bus URL the relay still numbers and marks events, and
 * subscribers get them through Replay only.
 */
#ifndef SVC_EVENTPUB_H
#define SVC_EVENTPUB_H

#include <stdint.h>

#include "libs/base/err.h"
#include "libs/db/db.h"
#include "libs/outbox/outbox.h"
#include "libs/rpc/rpc.h"

typedef struct eventpub eventpub;

typedef struct eventpub_options {
  const char *schema;  /* the outbox's schema ("orders"); required */
  const char *source;  /* the bus source, "<source>.v1.Events/Replay";
                          required */
  const char *bus_url; /* where the publisher listens (BUS_LISTEN); NULL
                          or "": no bus */
  int64_t poll_ms;     /* outbox_options' */
  int64_t keep_ms;     /* outbox_options' */
  /* Runs on the relay thread before each event is handed to the bus (a
   * test hook that widens the window between commit and publication);
   * NULL: none. */
  void (*before_publish)(void *arg);
  void *hook_arg;
} eventpub_options;

/* Creates the relay (not running) over db (borrowed; must outlive *out)
 * and, with a bus URL, reads the outbox's last seq and starts listening
 * with a publisher that continues it. o is copied (its strings are needed
 * only during the call). Errors: outbox_new's
 * (ERR_INVAL for a bad schema or source), outbox_last_seq's (libs/db's:
 * ERR_UNAVAILABLE when the database cannot be reached),
 * bus_publisher_new's (ERR_INVAL bad URL, ERR_UNAVAILABLE address in
 * use); each logged. *out is the caller's: eventpub_free. */
int eventpub_open(db_pool *db, const eventpub_options *o,
                  eventpub **out) WARN_UNUSED;

/* The outbox: handlers append to it and kick it. Owned by e. */
outbox *eventpub_outbox(const eventpub *e);

/* Registers "<source>.v1.Events/Replay" on srv (before the server
 * starts) and starts the relay thread. Errors: rpc_server_register's,
 * ERR_INTERNAL. */
int eventpub_start(eventpub *e, rpc_server *srv) WARN_UNUSED;

/* Stops the relay (joining its thread, which uses the publisher), then
 * closes the publisher and frees e. NULL-safe. */
void eventpub_free(eventpub *e);

#endif
