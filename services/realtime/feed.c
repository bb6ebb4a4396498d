/*
 * feed.c - bus events to publications (see feed.h).
 *
 * Runs on the bus subscriber's receive thread: the event rendered once,
 * its offset taken and the event put in the history in Redis (one
 * script), the frame made around it and handed to the WebSocket thread
 * through its inbox. Events of types this service does not render (pub.h),
 * or that fail to render, take no offset and are logged.
 */
#include "services/realtime/feed.h"

#include <stdlib.h>

#include "libs/obs/log.h"
#include "services/realtime/channel.h"
#include "services/realtime/pub.h"

#define REPLAY_DEADLINE_MS 2000
#define IDLE_CHECK_MS 5000

struct feed {
  feed_config c;
  bus_subscriber *sub;
};

static int backfill(void *arg, const char *source, uint64_t after_seq,
                    uint64_t up_to, uint32_t limit, bus_backfill *out) {
  (void)up_to;
  feed *f = arg;
  return bus_replay_fetch(f->c.replay, source, after_seq, limit,
                          REPLAY_DEADLINE_MS, out);
}

static int on_event(void *arg, const Rpc__V1__Event *ev) {
  feed *f = arg;
  if (!channel_from_topic(ev->topic) || !pub_known(ev->type)) {
    log_debug("event not published", "topic", ev->topic, "type", ev->type);
    return ERR_OK;
  }
  char *event = NULL, *text = NULL;
  size_t evlen = 0, len = 0;
  int rc = pub_event(ev, &event, &evlen);
  if (rc != ERR_OK) {
    log_warn("event not rendered", "id", ev->id, "error", err_str(rc));
    return rc == ERR_NOMEM ? rc : ERR_OK;
  }
  int64_t offset = 0;
  char epoch[OFFSETS_EPOCH_MAX + 1];
  rc = offsets_next(f->c.offsets, ev->topic, ev->id, event, evlen, &offset,
                    epoch);
  if (rc != ERR_OK) {
    free(event);
    log_warn("no offset for an event; retrying", "error", err_str(rc));
    return rc;
  }
  rc = pub_frame_text(ev->topic, offset, epoch, event, evlen, &text, &len);
  free(event);
  if (rc == ERR_OK)
    rc = ws_server_publish(f->c.ws, ev->topic, offset, epoch, text, len);
  free(text);
  if (rc != ERR_OK)
    log_warn("event not published", "id", ev->id, "error", err_str(rc));
  return rc == ERR_NOMEM || rc == ERR_TOOBIG ? rc : ERR_OK;
}

static int subscribe_all(bus_subscriber *s) {
  static const char *const kFamilies[] = {"orders.", "kitchen.", "tables."};
  for (size_t i = 0; i < sizeof kFamilies / sizeof kFamilies[0]; i++) {
    int rc = bus_subscribe_prefix(s, kFamilies[i]);
    if (rc != ERR_OK) return rc;
  }
  return ERR_OK;
}

int feed_start(const feed_config *c, feed **out) {
  *out = NULL;
  feed *f = calloc(1, sizeof *f);
  if (f == NULL) return ERR_NOMEM;
  f->c = *c;
  bus_subscriber_options o;
  bus_subscriber_options_init(&o);
  o.tracker.backfill = backfill;
  o.tracker.backfill_arg = f;
  o.tracker.idle_check_ms = IDLE_CHECK_MS;
  int rc = bus_subscriber_new(c->address, on_event, f, &o, &f->sub);
  if (rc == ERR_OK) rc = subscribe_all(f->sub);
  if (rc == ERR_OK) rc = bus_subscriber_start(f->sub);
  if (rc != ERR_OK) {
    feed_free(f);
    return rc;
  }
  *out = f;
  return ERR_OK;
}

void feed_free(feed *f) {
  if (f == NULL) return;
  bus_subscriber_free(f->sub);
  free(f);
}
