/*
 * bus_frame.c - the bus message format and the library's metrics.
 *
 * A frame is "topic\0" followed by a packed rpc.v1.Event. The topic comes
 * first, in clear, because nng's SUB filter can only match byte prefixes;
 * the event repeats it so that an event fetched through Replay (which has
 * no frame) still knows its topic. Decoding trusts nothing: the NUL is
 * searched for only within the longest legal topic, the protobuf is
 * unpacked once with a size cap, and the event must pass the same
 * validation a publisher applies before sending.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/uuid.h"
#include "libs/bus/bus.h"
#include "libs/bus/bus_internal.h"

/* ---------------------------------------------------------------- */
/* Metrics                                                            */
/* ---------------------------------------------------------------- */

static bus_metrics g_metrics;
static pthread_once_t g_metrics_once = PTHREAD_ONCE_INIT;

static void metrics_init_once(void) {
  static const char *const src[] = {"source"};
  static const char *const reason[] = {"reason"};
  g_metrics.published = metrics_counter(
      "bus_published_total", "Events sent by bus publishers.", 1, src);
  g_metrics.received =
      metrics_counter("bus_received_total",
                      "Valid live events received by bus subscribers.", 1, src);
  g_metrics.gaps = metrics_counter(
      "bus_gaps_total", "Sequence gaps detected in live events.", 1, src);
  g_metrics.backfilled = metrics_counter(
      "bus_backfilled_total", "Events delivered that were fetched by backfill.",
      1, src);
  g_metrics.duplicates =
      metrics_counter("bus_duplicates_total",
                      "Live events dropped as already delivered.", 1, src);
  g_metrics.backfill_failures = metrics_counter(
      "bus_backfill_failures_total",
      "Backfill calls that failed and will be retried.", 1, src);
  metrics_family *dropped =
      metrics_counter("bus_dropped_total",
                      "Bus messages or events dropped, by reason.", 1, reason);
  const char *v[1];
  v[0] = "bad_frame";
  g_metrics.drop_bad_frame = metrics_child_get(dropped, v);
  v[0] = "buffer_full";
  g_metrics.drop_buffer_full = metrics_child_get(dropped, v);
  v[0] = "lost";
  g_metrics.drop_lost = metrics_child_get(dropped, v);
  v[0] = "too_many_sources";
  g_metrics.drop_too_many_sources = metrics_child_get(dropped, v);
}

const bus_metrics *bus_metrics_get(void) {
  pthread_once(&g_metrics_once, metrics_init_once);
  return &g_metrics;
}

metrics_child *bus_metrics_source(metrics_family *f, const char *source) {
  const char *v[1] = {source};
  return f == NULL ? NULL : metrics_child_get(f, v);
}

/* ---------------------------------------------------------------- */
/* Validation                                                         */
/* ---------------------------------------------------------------- */

bool bus_name_ok(const char *s, size_t max) {
  if (s == NULL) return false;
  size_t n = strnlen(s, max + 1);
  return n >= 1 && n <= max && str_is_printable(s, n);
}

static bool short_string(const char *s, size_t max) {
  /* protobuf-c gives "" (never NULL) for unset strings, but a caller
   * building an event by hand might leave NULL: treat it as "". */
  return s == NULL || strnlen(s, max + 1) <= max;
}

int bus_event_validate(const Rpc__V1__Event *ev) {
  if (ev == NULL) return ERR_INVAL;
  if (!bus_name_ok(ev->topic, BUS_MAX_TOPIC_LEN)) return ERR_INVAL;
  if (!bus_name_ok(ev->source, BUS_MAX_SOURCE_LEN)) return ERR_INVAL;
  if (ev->seq == 0) return ERR_INVAL;
  if (ev->id == NULL || !uuid_is_valid(ev->id)) return ERR_INVAL;
  if (!short_string(ev->type, BUS_MAX_TYPE_LEN)) return ERR_INVAL;
  if (!short_string(ev->tenant_id, BUS_MAX_TENANT_LEN)) return ERR_INVAL;
  if (ev->payload.len > 0 && ev->payload.data == NULL) return ERR_INVAL;
  return ERR_OK;
}

/* ---------------------------------------------------------------- */
/* Frames                                                             */
/* ---------------------------------------------------------------- */

size_t bus_frame_size(const Rpc__V1__Event *ev) {
  return strlen(ev->topic) + 1 + rpc__v1__event__get_packed_size(ev);
}

void bus_frame_write(const Rpc__V1__Event *ev, uint8_t *dst) {
  size_t tl = strlen(ev->topic);
  memcpy(dst, ev->topic, tl);
  dst[tl] = '\0';
  (void)rpc__v1__event__pack(ev, dst + tl + 1);
}

int bus_frame_encode(const Rpc__V1__Event *ev, size_t max_bytes, uint8_t **out,
                     size_t *out_len) {
  if (out == NULL || out_len == NULL) return ERR_INVAL;
  *out = NULL;
  *out_len = 0;
  if (bus_event_validate(ev) != ERR_OK) return ERR_INVAL;
  if (max_bytes == 0) max_bytes = BUS_DEFAULT_MAX_MSG_BYTES;
  size_t n = bus_frame_size(ev);
  if (n > max_bytes) return ERR_TOOBIG;
  uint8_t *buf = malloc(n);
  if (buf == NULL) return ERR_NOMEM;
  bus_frame_write(ev, buf);
  *out = buf;
  *out_len = n;
  return ERR_OK;
}

int bus_frame_decode(const void *buf, size_t len, size_t max_bytes,
                     Rpc__V1__Event **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (buf == NULL && len > 0) return ERR_INVAL;
  if (max_bytes == 0) max_bytes = BUS_DEFAULT_MAX_MSG_BYTES;
  if (len > max_bytes) return ERR_TOOBIG;
  const uint8_t *p = buf;
  size_t scan = len < BUS_MAX_TOPIC_LEN + 1 ? len : BUS_MAX_TOPIC_LEN + 1;
  const uint8_t *nul = scan > 0 ? memchr(p, '\0', scan) : NULL;
  if (nul == NULL || nul == p) return ERR_PROTO;
  size_t tl = (size_t)(nul - p);
  Rpc__V1__Event *ev = rpc__v1__event__unpack(NULL, len - tl - 1, nul + 1);
  if (ev == NULL) return ERR_PROTO;
  if (bus_event_validate(ev) != ERR_OK || strlen(ev->topic) != tl ||
      memcmp(ev->topic, p, tl) != 0) {
    rpc__v1__event__free_unpacked(ev, NULL);
    return ERR_PROTO;
  }
  *out = ev;
  return ERR_OK;
}

int bus_event_copy(const Rpc__V1__Event *ev, Rpc__V1__Event **out) {
  *out = NULL;
  size_t n = rpc__v1__event__get_packed_size(ev);
  uint8_t stackbuf[1024];
  uint8_t *buf = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
  if (buf == NULL) return ERR_NOMEM;
  (void)rpc__v1__event__pack(ev, buf);
  Rpc__V1__Event *copy = rpc__v1__event__unpack(NULL, n, buf);
  if (buf != stackbuf) free(buf);
  /* Unpacking what we just packed fails only when memory runs out. */
  if (copy == NULL) return ERR_NOMEM;
  *out = copy;
  return ERR_OK;
}
