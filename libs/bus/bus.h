/*
 * bus.h - events over nng pub0/sub0, with per-source gap healing.
 *
 * WIRE
 *
 * A bus message is the topic bytes, one NUL byte, then a serialised
 * rpc.v1.Event (proto/rpc/v1/rpc.proto): id (UUIDv7, the consumers'
 * idempotency key), type ("OrderCreated"), tenant_id, source (the
 * publishing service), seq (1, 2, 3, ... per source, without holes),
 * time_unix_ms, payload (the type's own protobuf message) and topic (the
 * same topic again, so that replayed events still carry it). Topics look
 * like "orders.<tenant_id>", "kitchen.<tenant_id>", "auth.revoked",
 * "tenants.changed".
 *
 * nng's SUB filter matches byte prefixes of the whole message. The NUL
 * after the topic makes exact matching possible: subscribing to
 * "orders.abc\0" (bus_subscribe_exact) matches topic "orders.abc" only,
 * while the prefix "orders." (bus_subscribe_prefix) matches every
 * "orders.<tenant>" and the prefix "orders.abc" would also match
 * "orders.abcd".
 *
 * LOSS IS NORMAL, AND HEALED
 *
 * nng pub/sub never blocks the publisher: PUB keeps a short queue per
 * subscriber (16 messages by default) and drops the oldest when it is
 * full, SUB drops when its receive queue is full, and a subscriber that is
 * not connected sees nothing. Durability therefore does not rest on the
 * bus. Every source numbers its events (seq) and can serve them again
 * through its Replay RPC ("<source>.v1.Events/Replay", rpc.v1.ReplayRequest
 * -> rpc.v1.ReplayResponse). A subscriber remembers the last seq it
 * delivered per source:
 *
 *   seq == last + 1   delivered;
 *   seq <= last       a duplicate, dropped (consumers are idempotent by
 *                     event id anyway, so a repeat is harmless);
 *   seq >  last + 1   events were lost: the event is held, the backfill
 *                     function fetches (last, seq) from the source, those
 *                     are delivered in order, then the held event.
 *
 * If backfill fails (source unreachable) nothing is lost: the gap stays
 * open, later live events of that source are held (at most max_buffered;
 * past that the ones with the highest seq are dropped, which is safe
 * because the next backfill fetches them again), and backfill is retried
 * with exponential backoff. A source that answers ERR_NOTFOUND for a
 * range (it no longer keeps those events) makes the subscriber skip the
 * range: counted as lost and logged, never silently.
 *
 * Losses at the tail (the last events of a burst, with nothing after them
 * to reveal the gap) are found by the optional idle check: a source that
 * has been quiet for idle_check_ms is asked for anything after its last
 * seq.
 *
 * Sequence numbers are per source, across all of that source's topics.
 * A subscriber that filters out some of a source's topics sees every
 * skipped event as a gap: it still delivers correctly (backfilled events
 * outside its subscriptions advance the position without being
 * delivered), but pays a Replay call for each. So subscribe to every
 * topic family of the sources you consume ("orders.", "kitchen.",
 * "tables." for the orders service) or to everything (""), and filter in
 * the callback.
 *
 * A source name identifies one sequence. Services whose events come from
 * a database outbox own their sequence there (any replica may publish;
 * duplicates are dropped by seq). A process that numbers events in memory
 * (bus_publish) must use a source name of its own.
 *
 * PIECES
 *
 *   framing      bus_frame_encode / bus_frame_decode (pure functions)
 *   publisher    bus_publisher_new, bus_publish_event (caller's seq, for
 *                outbox relays), bus_publish (next seq in-process)
 *   tracker      the gap state machine on its own, without sockets or
 *                threads (bus_tracker_*); the subscriber runs one
 *   subscriber   bus_subscriber_new: dials publishers, one receive
 *                thread, delivers in order through a tracker
 *   replay       bus_replay_fetch: a backfill step over libs/rpc
 *
 * Metrics (libs/obs/metrics.h), labelled by source:
 *   bus_published_total{source}        events sent by a publisher
 *   bus_received_total{source}         valid live events received
 *   bus_gaps_total{source}             gaps detected
 *   bus_backfilled_total{source}       events delivered from backfill
 *   bus_duplicates_total{source}       events dropped as duplicates
 *   bus_backfill_failures_total{source} backfill calls that failed
 *   bus_dropped_total{reason}          bad_frame, buffer_full, lost,
 *                                      too_many_sources
 */
#ifndef BUS_BUS_H
#define BUS_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "proto/rpc/v1/rpc.pb-c.h"

#define BUS_MAX_TOPIC_LEN 200 /* bytes, without the NUL */
#define BUS_MAX_SOURCE_LEN 64
#define BUS_MAX_TYPE_LEN 128
#define BUS_MAX_TENANT_LEN 64
#define BUS_DEFAULT_MAX_MSG_BYTES (1024u * 1024u) /* whole bus message */
#define BUS_MAX_SUBSCRIPTIONS 64                  /* per subscriber */
#define BUS_MAX_ENDPOINTS 32 /* publisher URLs per subscriber */
#define BUS_DEFAULT_MAX_SOURCES 64
#define BUS_MAX_BACKFILL_LIMIT 10000

/* ------------------------------------------------------------------ */
/* Framing                                                             */
/* ------------------------------------------------------------------ */

/* Checks that ev can travel on the bus: topic 1..BUS_MAX_TOPIC_LEN
 * printable ASCII bytes; source 1..BUS_MAX_SOURCE_LEN printable bytes;
 * seq >= 1; id a canonical UUID; type and tenant_id within their maximum
 * lengths. Returns ERR_OK or ERR_INVAL. */
int bus_event_validate(const Rpc__V1__Event *ev) WARN_UNUSED;

/* Encodes ev as a bus message (topic = ev->topic, NUL, serialised ev).
 * ev must pass bus_event_validate. On ERR_OK *out is a malloc'd buffer of
 * *out_len bytes that the caller frees. Returns ERR_INVAL (invalid event),
 * ERR_TOOBIG (the message would exceed max_bytes; 0 means
 * BUS_DEFAULT_MAX_MSG_BYTES), ERR_NOMEM. ev stays the caller's. */
int bus_frame_encode(const Rpc__V1__Event *ev, size_t max_bytes, uint8_t **out,
                     size_t *out_len) WARN_UNUSED;

/* Decodes a bus message. Rejects, without reading past buf[len): a
 * message longer than max_bytes (0: the default) with ERR_TOOBIG; no NUL
 * within the first BUS_MAX_TOPIC_LEN + 1 bytes, an empty topic, a protobuf
 * that does not unpack, an event that fails bus_event_validate, or an
 * event whose topic differs from the frame's, with ERR_PROTO. On ERR_OK
 * *out is owned by the caller, released with
 * rpc__v1__event__free_unpacked(*out, NULL); otherwise *out is NULL. */
int bus_frame_decode(const void *buf, size_t len, size_t max_bytes,
                     Rpc__V1__Event **out) WARN_UNUSED;

/* ------------------------------------------------------------------ */
/* Publisher                                                           */
/* ------------------------------------------------------------------ */

typedef struct bus_publisher bus_publisher;

typedef struct bus_publisher_options {
  size_t max_msg_bytes; /* per bus message; default BUS_DEFAULT_MAX_MSG_BYTES */
  int send_buffer;      /* messages queued per subscriber before nng drops
                           the oldest; default 16 (nng's), max 8192 */
} bus_publisher_options;

/* Listens on url ("tcp://127.0.0.1:7203"; port 0 picks a free port, see
 * bus_publisher_port) with an nng pub0 socket. source (copied) names the
 * sequence; last_seq is the last seq already used, so bus_publish numbers
 * the next event last_seq + 1 (0 for a new source). opts may be NULL.
 * Returns ERR_INVAL (bad source or url, options out of range),
 * ERR_UNAVAILABLE (address in use), ERR_NOMEM, ERR_INTERNAL. *out is the
 * caller's, released with bus_publisher_free. */
int bus_publisher_new(const char *url, const char *source, uint64_t last_seq,
                      const bus_publisher_options *opts,
                      bus_publisher **out) WARN_UNUSED;

/* Closes the socket and frees p. NULL-safe. No other thread may be
 * publishing on p. */
void bus_publisher_free(bus_publisher *p);

/* The TCP port listened on, or -1. */
int bus_publisher_port(const bus_publisher *p);

/* The highest seq published so far (or the last_seq given at creation). */
uint64_t bus_publisher_last_seq(bus_publisher *p);

/* Publishes a complete event with the caller's seq, as an outbox relay
 * does. ev->source may be "" (the publisher's source is used) and
 * ev->time_unix_ms 0 (left as is); otherwise ev must pass
 * bus_event_validate and its source must be the publisher's. Raises the
 * publisher's last seq to ev->seq when higher. Thread-safe; events are put
 * on the wire in the order the calls are made. Returns ERR_INVAL,
 * ERR_TOOBIG (message over max_msg_bytes), ERR_NOMEM, ERR_CLOSED. ev stays
 * the caller's. Success means handed to nng, not received by anyone. */
int bus_publish_event(bus_publisher *p, const Rpc__V1__Event *ev) WARN_UNUSED;

/* Convenience for a process that numbers its events in memory: builds an
 * event with a new UUIDv7 id, the current time, the publisher's source and
 * the next seq, and publishes it. type and tenant_id may be NULL (""),
 * payload may be NULL when len is 0. The seq used is stored in *seq_out
 * when seq_out is not NULL; a failed publish does not use up a seq.
 * Thread-safe. Errors as bus_publish_event. */
int bus_publish(bus_publisher *p, const char *topic, const char *type,
                const char *tenant_id, const void *payload, size_t len,
                uint64_t *seq_out) WARN_UNUSED;

/* ------------------------------------------------------------------ */
/* Backfill                                                            */
/* ------------------------------------------------------------------ */

/* A batch of events a backfill function returns. Owned by the tracker;
 * valid only during the backfill call. */
typedef struct bus_backfill bus_backfill;

/* Fetches events of `source` with seq > after_seq, ascending, at most
 * `limit` of them, into out (bus_backfill_add, bus_backfill_add_replay).
 * up_to is the highest seq the tracker knows it is missing, or 0 for
 * "everything there is" (start-up catch-up, idle check); returning more
 * than up_to is fine, fewer means the tracker calls again.
 *
 * Return ERR_OK when the source answered (even with no events),
 * ERR_NOTFOUND when the source no longer has events after after_seq (the
 * tracker skips the range it is missing, counted as lost), anything else
 * when the source could not be asked: the tracker retries later with
 * backoff. Runs on the subscriber's receive thread; it may block (an RPC
 * call), but with a deadline: live events wait meanwhile. */
typedef int (*bus_backfill_fn)(void *arg, const char *source,
                               uint64_t after_seq, uint64_t up_to,
                               uint32_t limit, bus_backfill *out);

/* Adds a copy of ev to the batch. Events of another source, with seq <=
 * after_seq, or failing bus_event_validate are ignored (ERR_OK: the
 * source's problem, not the caller's). Events past the call's limit are
 * ignored too (fetched by a later call). Returns ERR_NOMEM. */
int bus_backfill_add(bus_backfill *b, const Rpc__V1__Event *ev) WARN_UNUSED;

/* Adds every event of a serialised rpc.v1.ReplayResponse (the Replay
 * RPC's reply payload, data[0..len)) as bus_backfill_add does, and records
 * its last_seq (bus_backfill_set_last_seq). Returns ERR_PROTO when it
 * does not decode, ERR_TOOBIG when longer than the tracker's
 * max_replay_bytes, ERR_NOMEM. */
int bus_backfill_add_replay(bus_backfill *b, const void *data,
                            size_t len) WARN_UNUSED;

/* Tells the tracker the source's newest seq: in catch-up mode it then
 * knows how far to go without asking until an empty answer. */
void bus_backfill_set_last_seq(bus_backfill *b, uint64_t last_seq);

/* ------------------------------------------------------------------ */
/* Tracker: the per-source gap state machine                           */
/* ------------------------------------------------------------------ */

typedef struct bus_tracker bus_tracker;

/* Delivers one event, in seq order per source. ev is borrowed for the
 * call. Return ERR_OK when handled. Any other value means "not now": the
 * tracker keeps the event and delivers it again after a backoff, holding
 * later events of that source meanwhile (other sources go on). */
typedef int (*bus_deliver_fn)(void *arg, const Rpc__V1__Event *ev);

/* Delivers a run of events of one source in one call: ev[0..n), n >= 1,
 * consecutive seqs starting at the position + 1 (a backfill page, held
 * events that became contiguous, or a single live event), so that a
 * consumer can handle them together (one database transaction). ev and
 * the events are borrowed for the call. Return ERR_OK when all n are
 * handled. Any other value means the first *taken (0..n-1; the consumer
 * sets it, it starts at 0) were handled and the rest "not now": the
 * position moves past the taken ones and the next is delivered again
 * after a backoff, as for a refused bus_deliver_fn. */
typedef int (*bus_deliver_batch_fn)(void *arg, const Rpc__V1__Event *const *ev,
                                    size_t n, size_t *taken);

typedef struct bus_tracker_options {
  bus_deliver_fn deliver; /* one of deliver and deliver_batch is required */
  bus_deliver_batch_fn deliver_batch; /* when set, used instead of deliver;
                                         runs are at most backfill_limit
                                         long */
  void *deliver_arg;                  /* for either */
  bus_backfill_fn backfill; /* NULL: gaps are skipped (counted as lost) */
  void *backfill_arg;
  size_t max_sources;      /* distinct sources tracked; default 64, max
                              4096; events of further sources are dropped */
  size_t max_buffered;     /* held events per source; default 1024,
                              max 1000000 */
  uint32_t backfill_limit; /* events asked for per backfill call;
                              default 256, max BUS_MAX_BACKFILL_LIMIT */
  uint32_t retry_min_ms;   /* first backoff after a failure; default 100 */
  uint32_t retry_max_ms;   /* backoff cap; default 5000 */
  uint32_t idle_check_ms;  /* ask a quiet source for events after its last
                              seq this often; 0 (default) = never */
  size_t max_replay_bytes; /* bus_backfill_add_replay input cap; default
                              16 MiB */
} bus_tracker_options;

/* Fills o with the defaults (deliver and backfill NULL). */
void bus_tracker_options_init(bus_tracker_options *o);

/* Creates a tracker. opts is copied; zero fields take their defaults.
 * Returns ERR_INVAL (no deliver function, out-of-range option), ERR_NOMEM.
 * *out is the caller's (bus_tracker_free). A tracker is used by one
 * thread at a time; only bus_tracker_interrupt and bus_tracker_get_stats
 * may be called from others. */
int bus_tracker_new(const bus_tracker_options *opts,
                    bus_tracker **out) WARN_UNUSED;

/* Frees t and every held event. NULL-safe. */
void bus_tracker_free(bus_tracker *t);

/* Declares that everything of `source` up to after_seq has been handled
 * (a consumer that persists its position; 0 = from the very first event).
 * The next bus_tracker_poll catches up through backfill until the source
 * has nothing more. Without a position, a source's first live event is
 * delivered as is and sets the position. Returns ERR_INVAL (bad source
 * name), ERR_TOOBIG (max_sources reached), ERR_NOMEM. */
int bus_tracker_set_position(bus_tracker *t, const char *source,
                             uint64_t after_seq) WARN_UNUSED;

/* Feeds one live event (borrowed; copied if it must be held). Delivers,
 * drops as duplicate, or holds it and backfills, as described at the top.
 * now_ms is time_mono_ms() (injected so tests control backoff). Returns
 * ERR_OK, ERR_INVAL (event fails bus_event_validate), ERR_TOOBIG (a new
 * source past max_sources; the event is dropped), ERR_NOMEM. */
int bus_tracker_offer(bus_tracker *t, const Rpc__V1__Event *ev,
                      int64_t now_ms) WARN_UNUSED;

/* Runs what is due: catch-up after bus_tracker_set_position, backfill
 * retries whose backoff has passed, redelivery after a refused event,
 * idle checks. Call it regularly (the subscriber does, at least every
 * 100 ms). */
void bus_tracker_poll(bus_tracker *t, int64_t now_ms);

/* The last seq delivered (or skipped) for source: ERR_OK, or ERR_NOTFOUND
 * when the source is unknown or has no position yet. */
int bus_tracker_position(const bus_tracker *t, const char *source,
                         uint64_t *last_seq) WARN_UNUSED;

/* True when source has a gap open (events held, known missing, catch-up
 * or retry pending). */
bool bus_tracker_pending(const bus_tracker *t, const char *source);

/* Makes a running poll/offer return soon (between backfill calls), and
 * every later one return at once. For shutdown. Thread-safe. */
void bus_tracker_interrupt(bus_tracker *t);

typedef struct bus_stats {
  uint64_t received;   /* valid live events offered */
  uint64_t delivered;  /* deliver calls that returned ERR_OK */
  uint64_t duplicates; /* live events dropped as already seen */
  uint64_t gaps;       /* gaps detected in live events */
  uint64_t backfilled; /* delivered events that came from backfill */
  uint64_t backfill_calls;
  uint64_t backfill_failures; /* calls that failed (retried later) */
  uint64_t buffer_dropped;    /* held events dropped at max_buffered */
  uint64_t lost;              /* seqs skipped for good (ERR_NOTFOUND, no
                                 backfill function) */
  uint64_t deliver_refused;   /* deliver calls that did not return ERR_OK */
  uint64_t bad_frames;        /* subscriber: messages that did not decode */
  uint64_t rejected;          /* events refused by bus_tracker_offer */
} bus_stats;

/* Counters since creation. Thread-safe (each field read atomically). */
void bus_tracker_get_stats(const bus_tracker *t, bus_stats *out);

/* ------------------------------------------------------------------ */
/* Subscriber                                                          */
/* ------------------------------------------------------------------ */

typedef struct bus_subscriber bus_subscriber;

/* Called on the receive thread for each event, in seq order per source,
 * exactly once per seq (unless it refuses: see bus_deliver_fn). Only
 * events whose topic matches a subscription are passed. ev is borrowed.
 * It may call bus_subscriber_get_stats but not bus_subscriber_free. */
typedef int (*bus_event_fn)(void *arg, const Rpc__V1__Event *ev);

typedef struct bus_subscriber_options {
  bus_tracker_options tracker;  /* deliver/deliver_arg are ignored: the
                                   subscriber's callback is used */
  size_t max_msg_bytes;         /* NNG_OPT_RECVMAXSZ; default
                                   BUS_DEFAULT_MAX_MSG_BYTES */
  int recv_buffer;              /* messages queued in nng before the oldest
                                   is dropped; default 128, 1..8192 */
  uint32_t reconnect_min_ms;    /* dialer reconnect backoff; default 100 */
  uint32_t reconnect_max_ms;    /* default 2000 */
  uint32_t resolve_interval_ms; /* dns+tcp:// re-resolution; default 5000 */
  char thread_name[16];         /* the receive thread's name (top, /proc
                                   task comm; at most 15 bytes kept);
                                   default "bus-sub" */
} bus_subscriber_options;

/* Fills o with the defaults above. */
void bus_subscriber_options_init(bus_subscriber_options *o);

/* Creates a subscriber for a comma-separated list of publisher endpoints,
 * each "tcp://HOST:PORT" or "dns+tcp://NAME:PORT" (the same syntax as the
 * RPC client, parsed by rpc_address_parse; a dns+tcp name is resolved
 * every resolve_interval_ms and every address behind it is dialled). Not
 * yet receiving: add subscriptions and positions, then
 * bus_subscriber_start. Publishers that are not up yet are dialled again
 * in the background. fn (required) and arg are the event callback.
 * Returns ERR_INVAL (address syntax, options), ERR_NOMEM, ERR_INTERNAL.
 * *out is the caller's (bus_subscriber_free). */
int bus_subscriber_new(const char *address, bus_event_fn fn, void *arg,
                       const bus_subscriber_options *opts,
                       bus_subscriber **out) WARN_UNUSED;

/* Subscribes to exactly one topic (frames "topic\0...") or to every topic
 * starting with prefix ("" = everything). Before or after start;
 * thread-safe. Returns ERR_INVAL (too long, non-printable),
 * ERR_TOOBIG (BUS_MAX_SUBSCRIPTIONS reached), ERR_NOMEM. Subscribing twice
 * to the same thing is ERR_OK. */
int bus_subscribe_exact(bus_subscriber *s, const char *topic) WARN_UNUSED;
int bus_subscribe_prefix(bus_subscriber *s, const char *prefix) WARN_UNUSED;

/* bus_tracker_set_position for this subscriber's tracker. Only before
 * bus_subscriber_start (ERR_INVAL after); the catch-up runs as soon as
 * the receive thread starts. */
int bus_subscriber_set_position(bus_subscriber *s, const char *source,
                                uint64_t after_seq) WARN_UNUSED;

/* Starts the receive thread (and the resolver for dns+tcp names). Once.
 * Returns ERR_INVAL (already started), ERR_INTERNAL. */
int bus_subscriber_start(bus_subscriber *s) WARN_UNUSED;

/* Number of publishers currently connected. */
int bus_subscriber_connected(bus_subscriber *s);

/* Waits until at least n publishers are connected: ERR_OK or
 * ERR_TIMEOUT. Events published before a subscriber is connected are
 * missed (and healed through backfill when a position is set). */
int bus_subscriber_wait_connected(bus_subscriber *s, int n,
                                  uint32_t timeout_ms) WARN_UNUSED;

/* Counters (thread-safe). */
void bus_subscriber_get_stats(bus_subscriber *s, bus_stats *out);

/* Called on the receive thread for runs of events, as bus_deliver_batch_fn
 * (consecutive seqs of one source, at most tracker.backfill_limit; live
 * events come one at a time, backfill pages and held events that became
 * contiguous as longer runs). Only events whose topic matches a
 * subscription are passed, so the seqs of a run may have holes where
 * events of other topics were filtered out; n >= 1. Return ERR_OK when
 * all n were handled; otherwise *taken (starting at 0) says how many of
 * the first were, and the next is delivered again after a backoff. */
typedef int (*bus_batch_fn)(void *arg, const Rpc__V1__Event *const *ev,
                            size_t n, size_t *taken);

/* bus_subscriber_new with a batch callback instead of a per-event one:
 * for consumers that store many events in one transaction. Everything
 * else (gaps, Replay, positions, subscriptions) is the same. */
int bus_subscriber_new_batch(const char *address, bus_batch_fn fn, void *arg,
                             const bus_subscriber_options *opts,
                             bus_subscriber **out) WARN_UNUSED;

/* Stops receiving, waits for the callback or backfill in progress to
 * return, closes the socket and frees s and its tracker. NULL-safe. Must
 * not be called from the callback or the backfill function. */
void bus_subscriber_free(bus_subscriber *s);

/* ------------------------------------------------------------------ */
/* Replay over libs/rpc                                                */
/* ------------------------------------------------------------------ */

struct rpc_client;

/* Writes "<source>.v1.Events/Replay" into buf (cap bytes). Returns
 * ERR_INVAL (bad source), ERR_TOOBIG. */
int bus_replay_method(const char *source, char *buf, size_t cap) WARN_UNUSED;

/* One backfill step through the source's Replay RPC: calls
 * "<source>.v1.Events/Replay" on cli (idempotent, so retried by libs/rpc
 * within deadline_ms; 0 = the client's default) with after_seq and limit,
 * and adds the reply to out (bus_backfill_add_replay). A backfill function
 * is typically this one line plus the choice of client. Returns ERR_OK;
 * ERR_NOTFOUND when the source answers NOT_FOUND or OUT_OF_RANGE (it no
 * longer has those events); ERR_UNAVAILABLE or ERR_TIMEOUT when it could
 * not be asked; ERR_PROTO for an undecodable reply or any other status;
 * ERR_INVAL, ERR_NOMEM. cli stays the caller's. */
int bus_replay_fetch(struct rpc_client *cli, const char *source,
                     uint64_t after_seq, uint32_t limit, uint32_t deadline_ms,
                     bus_backfill *out) WARN_UNUSED;

#endif
