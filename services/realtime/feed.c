/*
 * feed.c - bus events to publications (see feed.h).
 *
 * Runs on the bus subscriber's receive thread: the event rendered once,
 * its offset taken and the event put in the history in Redis (one
 * script), the frame made around it and handed to the WebSocket thread
 * through its inbox; an order event of a customer's order likewise on
 * private.user.<customer_id>. Events of types this service does not render
 * (pub.h), or that fail to render, take no offset and are logged.
 */
#include "services/realtime/feed.h"

#include <stdio.h>
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

/* The rendered event on channel: its offset there (and its place in the
 * history) from Redis, then the frame to the WebSocket thread. */
static int publish_on(feed *f, const char *channel, const Rpc__V1__Event *ev,
                      const char *event, size_t evlen) {
  int64_t offset = 0;
  char epoch[OFFSETS_EPOCH_MAX + 1];
  int rc =
      offsets_next(f->c.offsets, channel, ev->id, event, evlen, &offset, epoch);
  if (rc != ERR_OK) {
    log_warn("no offset for an event; retrying", "error", err_str(rc));
    return rc;
  }
  char *text = NULL;
  size_t len = 0;
  rc = pub_frame_text(channel, offset, epoch, event, evlen, &text, &len);
  if (rc == ERR_OK)
    rc = ws_server_publish(f->c.ws, channel, offset, epoch, text, len);
  free(text);
  if (rc != ERR_OK)
    log_warn("event not published", "id", ev->id, "error", err_str(rc));
  return rc == ERR_NOMEM || rc == ERR_TOOBIG ? rc : ERR_OK;
}

/* An event goes to its topic's channel and, for a customer's order, to
 * the customer's private channel too (each channel numbers it on its
 * own). A retried event takes the same offsets again (offsets.h), and
 * subscribers are never sent an offset twice. */
static int on_event(void *arg, const Rpc__V1__Event *ev) {
  feed *f = arg;
  if (!channel_from_topic(ev->topic) || !pub_known(ev->type)) {
    log_debug("event not published", "topic", ev->topic, "type", ev->type);
    return ERR_OK;
  }
  char *event = NULL;
  size_t evlen = 0;
  int rc = pub_event(ev, &event, &evlen);
  if (rc != ERR_OK) {
    log_warn("event not rendered", "id", ev->id, "error", err_str(rc));
    return rc == ERR_NOMEM ? rc : ERR_OK;
  }
  char mine[CHANNEL_MAX + 1];
  rc = publish_on(f, ev->topic, ev, event, evlen);
  if (rc == ERR_OK && pub_customer_channel(ev, mine, sizeof mine))
    rc = publish_on(f, mine, ev, event, evlen);
  free(event);
  return rc;
}

static int subscribe_all(bus_subscriber *s, const char *const *families) {
  static const char *const kOrders[] = {"orders.", "kitchen.", "tables.", NULL};
  for (const char *const *f = families ? families : kOrders; *f; f++) {
    int rc = bus_subscribe_prefix(s, *f);
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
  snprintf(o.thread_name, sizeof o.thread_name, "%s",
           c->thread_name != NULL ? c->thread_name : "rt-feed");
  int rc = bus_subscriber_new(c->address, on_event, f, &o, &f->sub);
  if (rc == ERR_OK) rc = subscribe_all(f->sub, c->families);
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
