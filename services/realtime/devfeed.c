/*
 * devfeed.c - sync's device events to publications (see devfeed.h). Same
 * steps as feed.c on its own subscriber, so the orders feed and this one
 * neither share a sequence nor hold each other up.
 */
#include "services/realtime/devfeed.h"

#include <stdlib.h>

#include "libs/bus/bus.h"
#include "libs/obs/log.h"
#include "services/realtime/channel.h"
#include "services/realtime/pub.h"

#define REPLAY_DEADLINE_MS 2000
#define IDLE_CHECK_MS 5000

struct devfeed {
  devfeed_config c;
  bus_subscriber *sub;
};

static int backfill(void *arg, const char *source, uint64_t after_seq,
                    uint64_t up_to, uint32_t limit, bus_backfill *out) {
  (void)up_to;
  devfeed *f = arg;
  return bus_replay_fetch(f->c.replay, source, after_seq, limit,
                          REPLAY_DEADLINE_MS, out);
}

/* The event on its channel: offset and history from Redis (a failure is
 * returned, so the tracker delivers it again), then the frame. */
static int on_event(void *arg, const Rpc__V1__Event *ev) {
  devfeed *f = arg;
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
    log_warn("no offset for an event; retrying", "error", err_str(rc));
    free(event);
    return rc;
  }
  rc = pub_frame_text(ev->topic, offset, epoch, event, evlen, &text, &len);
  if (rc == ERR_OK)
    rc = ws_server_publish(f->c.ws, ev->topic, offset, epoch, text, len);
  if (rc != ERR_OK)
    log_warn("event not published", "id", ev->id, "error", err_str(rc));
  free(text);
  free(event);
  return rc == ERR_NOMEM || rc == ERR_TOOBIG ? rc : ERR_OK;
}

int devfeed_start(const devfeed_config *c, devfeed **out) {
  *out = NULL;
  devfeed *f = calloc(1, sizeof *f);
  if (f == NULL) return ERR_NOMEM;
  f->c = *c;
  bus_subscriber_options o;
  bus_subscriber_options_init(&o);
  o.tracker.backfill = backfill;
  o.tracker.backfill_arg = f;
  o.tracker.idle_check_ms = IDLE_CHECK_MS;
  int rc = bus_subscriber_new(c->address, on_event, f, &o, &f->sub);
  if (rc == ERR_OK) rc = bus_subscribe_prefix(f->sub, "devices.");
  if (rc == ERR_OK) rc = bus_subscriber_start(f->sub);
  if (rc != ERR_OK) {
    devfeed_free(f);
    return rc;
  }
  *out = f;
  return ERR_OK;
}

void devfeed_free(devfeed *f) {
  if (f == NULL) return;
  bus_subscriber_free(f->sub);
  free(f);
}
