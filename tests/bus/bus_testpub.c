/*
 * bus_testpub - an event source in miniature for the cross-process bus
 * tests: a libs/bus publisher plus a libs/rpc server that replays every
 * event it ever numbered, as a real service does from its outbox.
 *
 *   bus_testpub --bus tcp://127.0.0.1:P --rpc tcp://127.0.0.1:Q
 *               --source NAME [--send-buffer N]
 *
 * Methods:
 *   <source>.v1.Events/Replay   rpc.v1.ReplayRequest -> ReplayResponse,
 *                               from the kept events (limit default 100,
 *                               capped at 1000)
 *   bustest.v1.Pub/Publish      payload "count=N topic=T [skip=A-B,C,...]
 *                               [pause_every=K]": numbers N more events
 *                               on topic T and keeps them all, but does
 *                               not put the skipped seqs on the bus (the
 *                               forced gaps); with pause_every, sleeps
 *                               1 ms after every K events. Replies with
 *                               the last seq, in decimal.
 *   bustest.v1.Pub/FailReplay   payload "N": the next N Replay calls
 *                               answer UNAVAILABLE (a source that is
 *                               down for a while).
 *
 * SIGTERM or SIGINT stops it (exit 0).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/bus/bus.h"
#include "libs/obs/lifecycle.h"
#include "libs/obs/log.h"
#include "libs/rpc/rpc.h"

#define MAX_KEPT 200000
#define MAX_SKIPS 64

static char g_source[BUS_MAX_SOURCE_LEN + 1];
static bus_publisher *g_pub;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static Rpc__V1__Event **g_kept; /* g_kept[seq - 1], each owned */
static uint64_t g_n;            /* events kept, under g_mu */
static atomic_int g_fail_replay;

typedef struct range {
  uint64_t lo, hi;
} range;

static bool parse_u64(const char *s, size_t len, uint64_t *out) {
  char buf[24];
  if (len == 0 || len >= sizeof(buf)) return false;
  memcpy(buf, s, len);
  buf[len] = '\0';
  char *end = NULL;
  unsigned long long v = strtoull(buf, &end, 10);
  if (end == buf || *end != '\0' || buf[0] == '-') return false;
  *out = v;
  return true;
}

/* "5-9,120" -> ranges. */
static bool parse_skips(const char *s, range *out, size_t *n) {
  *n = 0;
  while (*s != '\0') {
    const char *comma = strchr(s, ',');
    size_t len = comma ? (size_t)(comma - s) : strlen(s);
    const char *dash = memchr(s, '-', len);
    range r;
    if (dash != NULL) {
      if (!parse_u64(s, (size_t)(dash - s), &r.lo) ||
          !parse_u64(dash + 1, len - (size_t)(dash - s) - 1, &r.hi)) {
        return false;
      }
    } else {
      if (!parse_u64(s, len, &r.lo)) return false;
      r.hi = r.lo;
    }
    if (*n == MAX_SKIPS || r.hi < r.lo) return false;
    out[(*n)++] = r;
    s += len;
    if (*s == ',') s++;
  }
  return true;
}

static bool skipped(const range *r, size_t n, uint64_t seq) {
  for (size_t i = 0; i < n; i++) {
    if (seq >= r[i].lo && seq <= r[i].hi) return true;
  }
  return false;
}

/* Builds and keeps event seq; returns it (owned by g_kept). */
static Rpc__V1__Event *keep_event(uint64_t seq, const char *topic) {
  char id[UUID_STR_LEN + 1];
  uuid_v7_str(id);
  char payload[32];
  int plen = snprintf(payload, sizeof(payload), "payload-%" PRIu64, seq);
  Rpc__V1__Event e = RPC__V1__EVENT__INIT;
  e.id = id;
  e.type = "TestEvent";
  e.tenant_id = "t1";
  e.source = g_source;
  e.seq = seq;
  e.time_unix_ms = time_now_ms();
  e.payload.data = (uint8_t *)payload;
  e.payload.len = (size_t)plen;
  e.topic = (char *)topic;
  /* Keep an owned copy: pack and unpack once. */
  size_t n = rpc__v1__event__get_packed_size(&e);
  uint8_t *buf = malloc(n);
  if (buf == NULL) return NULL;
  (void)rpc__v1__event__pack(&e, buf);
  Rpc__V1__Event *copy = rpc__v1__event__unpack(NULL, n, buf);
  free(buf);
  return copy;
}

static void h_publish(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  char req[1024];
  if (call->payload_len >= sizeof(req)) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "request too long");
    return;
  }
  memcpy(req, call->payload, call->payload_len);
  req[call->payload_len] = '\0';
  uint64_t count = 0, pause_every = 0;
  char topic[BUS_MAX_TOPIC_LEN + 1] = "";
  range skips[MAX_SKIPS];
  size_t nskips = 0;
  char *save = NULL;
  for (char *tok = strtok_r(req, " ", &save); tok != NULL;
       tok = strtok_r(NULL, " ", &save)) {
    bool ok = true;
    if (strncmp(tok, "count=", 6) == 0) {
      ok = parse_u64(tok + 6, strlen(tok + 6), &count);
    } else if (strncmp(tok, "topic=", 6) == 0) {
      ok = strlen(tok + 6) <= BUS_MAX_TOPIC_LEN;
      if (ok) snprintf(topic, sizeof(topic), "%s", tok + 6);
    } else if (strncmp(tok, "skip=", 5) == 0) {
      ok = parse_skips(tok + 5, skips, &nskips);
    } else if (strncmp(tok, "pause_every=", 12) == 0) {
      ok = parse_u64(tok + 12, strlen(tok + 12), &pause_every);
    } else {
      ok = false;
    }
    if (!ok) {
      rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "bad field %s", tok);
      return;
    }
  }
  if (topic[0] == '\0' || count == 0) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT,
                     "count and topic are required");
    return;
  }
  uint64_t last = 0;
  for (uint64_t i = 0; i < count; i++) {
    /* Keep first, then publish: the outbox order, so a subscriber that
     * sees seq N can always replay up to N. */
    pthread_mutex_lock(&g_mu);
    if (g_n >= MAX_KEPT) {
      pthread_mutex_unlock(&g_mu);
      rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "store full");
      return;
    }
    uint64_t seq = g_n + 1;
    Rpc__V1__Event *e = keep_event(seq, topic);
    if (e == NULL) {
      pthread_mutex_unlock(&g_mu);
      rpc_reply_status(reply, RPC_INTERNAL, "out of memory");
      return;
    }
    g_kept[g_n++] = e;
    pthread_mutex_unlock(&g_mu);
    last = seq;
    if (!skipped(skips, nskips, seq)) {
      int rc = bus_publish_event(g_pub, e);
      if (rc != ERR_OK) {
        rpc_reply_status(reply, RPC_INTERNAL, "publish: %s", err_str(rc));
        return;
      }
    }
    if (pause_every > 0 && (i + 1) % pause_every == 0) time_sleep_ms(1);
  }
  char out[24];
  int n = snprintf(out, sizeof(out), "%" PRIu64, last);
  if (rpc_reply_set_payload(reply, out, (size_t)n) != ERR_OK) {
    rpc_reply_status(reply, RPC_INTERNAL, NULL);
  }
}

static void h_fail_replay(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  uint64_t n = 0;
  if (!parse_u64((const char *)call->payload, call->payload_len, &n) ||
      n > 1000000) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "want a count");
    return;
  }
  atomic_store(&g_fail_replay, (int)n);
}

static void h_replay(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  int f = atomic_load(&g_fail_replay);
  while (f > 0 && !atomic_compare_exchange_weak(&g_fail_replay, &f, f - 1)) {
  }
  if (f > 0) {
    rpc_reply_status(reply, RPC_UNAVAILABLE, "replay down (test)");
    return;
  }
  Rpc__V1__ReplayRequest *req =
      rpc__v1__replay_request__unpack(NULL, call->payload_len, call->payload);
  if (req == NULL) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "undecodable ReplayRequest");
    return;
  }
  uint32_t limit = req->limit == 0     ? 100
                   : req->limit > 1000 ? 1000
                                       : req->limit;
  Rpc__V1__Event **list = calloc(limit, sizeof(*list));
  if (list == NULL) {
    rpc__v1__replay_request__free_unpacked(req, NULL);
    rpc_reply_status(reply, RPC_INTERNAL, NULL);
    return;
  }
  Rpc__V1__ReplayResponse resp = RPC__V1__REPLAY_RESPONSE__INIT;
  pthread_mutex_lock(&g_mu);
  size_t k = 0;
  for (uint64_t s = req->after_seq + 1; s <= g_n && k < limit; s++) {
    list[k++] = g_kept[s - 1];
  }
  resp.events = list;
  resp.n_events = k;
  resp.last_seq = g_n;
  /* Serialised under the lock: kept events are never changed, but the
   * array may be written by a concurrent Publish. */
  if (rpc_reply_set_message(reply, &resp.base) != ERR_OK) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "reply too large");
  }
  pthread_mutex_unlock(&g_mu);
  free(list);
  rpc__v1__replay_request__free_unpacked(req, NULL);
}

int main(int argc, char **argv) {
  const char *bus_url = NULL, *rpc_url = NULL, *source = NULL;
  long send_buffer = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--bus") == 0) {
      bus_url = argv[i + 1];
    } else if (strcmp(argv[i], "--rpc") == 0) {
      rpc_url = argv[i + 1];
    } else if (strcmp(argv[i], "--source") == 0) {
      source = argv[i + 1];
    } else if (strcmp(argv[i], "--send-buffer") == 0) {
      char *end = NULL;
      send_buffer = strtol(argv[i + 1], &end, 10);
      if (end == argv[i + 1] || *end != '\0' || send_buffer < 1 ||
          send_buffer > 8192) {
        fprintf(stderr, "bad --send-buffer\n");
        return 2;
      }
    } else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (bus_url == NULL || rpc_url == NULL || source == NULL ||
      strlen(source) > BUS_MAX_SOURCE_LEN) {
    fprintf(stderr, "usage: bus_testpub --bus URL --rpc URL --source NAME "
                    "[--send-buffer N]\n");
    return 2;
  }
  snprintf(g_source, sizeof(g_source), "%s", source);
  if (lifecycle_init() != ERR_OK) return 1;
  log_init("bus_testpub", LOG_INFO);
  g_kept = calloc(MAX_KEPT, sizeof(*g_kept));
  if (g_kept == NULL) return 1;

  bus_publisher_options po = {.max_msg_bytes = 0,
                              .send_buffer = (int)send_buffer};
  int rc = bus_publisher_new(bus_url, g_source, 0, &po, &g_pub);
  if (rc != ERR_OK) {
    log_error("cannot publish", "url", bus_url, "error", err_str(rc));
    return 1;
  }
  char replay[RPC_MAX_METHOD_LEN + 1];
  rpc_server *srv = NULL;
  if (bus_replay_method(g_source, replay, sizeof(replay)) != ERR_OK ||
      rpc_server_new(NULL, &srv) != ERR_OK ||
      rpc_server_register(srv, replay, h_replay, NULL) != ERR_OK ||
      rpc_server_register(srv, "bustest.v1.Pub/Publish", h_publish, NULL) !=
          ERR_OK ||
      rpc_server_register(srv, "bustest.v1.Pub/FailReplay", h_fail_replay,
                          NULL) != ERR_OK) {
    log_error("cannot set up the rpc server");
    return 1;
  }
  rc = rpc_server_start(srv, rpc_url);
  if (rc != ERR_OK) {
    log_error("cannot listen", "url", rpc_url, "error", err_str(rc));
    return 1;
  }
  log_info("ready", "bus", bus_url, "rpc", rpc_url, "source", g_source);
  int sig = 0;
  if (lifecycle_wait_for_stop(-1, &sig) != ERR_OK)
    log_warn("signal wait failed");
  rpc_server_close(srv);
  bus_publisher_free(g_pub);
  for (uint64_t i = 0; i < g_n; i++)
    rpc__v1__event__free_unpacked(g_kept[i], NULL);
  free(g_kept);
  log_info("stopped");
  return 0;
}
