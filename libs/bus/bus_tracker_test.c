/*
 * bus_tracker_test.c - the gap state machine on its own: no sockets, no
 * threads, time passed in. A fake source keeps events 1..N and answers
 * backfill calls (and can fail, lag, or have forgotten old events); a
 * recorder collects what is delivered. Each test checks the exact
 * delivery order and the exact backfill calls.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/uuid.h"
#include "libs/bus/bus.h"

#define MAXEV 2000

typedef struct stored {
  Rpc__V1__Event e;
  char id[UUID_STR_LEN + 1];
  char src[16];
  char topic[32];
} stored;

/* A source's event store, and what its backfill calls saw. */
typedef struct fake_src {
  const char *name;
  stored ev[MAXEV + 1]; /* ev[seq] */
  uint64_t n;           /* events 1..n exist */
  uint64_t gone_upto;   /* after_seq < gone_upto answers ERR_NOTFOUND */
  int fail_next;        /* this many calls fail with ERR_UNAVAILABLE */
  bool lagging;         /* answer OK with no events */
  bool report_last;     /* set last_seq in answers */
  bool use_replay;      /* answer through bus_backfill_add_replay */
  bool add_noise;       /* add foreign/old/invalid events, newest first */
  bool over_limit;      /* add every event after after_seq, ignoring limit */
  int garbage_next;     /* this many calls answer with bytes that do not
                           decode */
  int calls;
  uint64_t call_after[64];
  uint64_t call_upto[64];
  uint32_t call_limit[64];
} fake_src;

typedef struct world {
  fake_src a, b;
  uint64_t got_seq[4 * MAXEV];
  char got_src[4 * MAXEV][16];
  size_t ngot;
  int refuse_seq;   /* deliver refuses this seq ... */
  int refuse_times; /* ... this many times */
  bool batch;       /* the tracker gets deliver_batch, not deliver */
  size_t take_max;  /* batch mode: take at most this many per call (0: all) */
  size_t runs[4 * MAXEV]; /* batch mode: each call's n */
  size_t nruns;
} world;

static world *W;

static void fill(fake_src *f, const char *name, uint64_t n) {
  f->name = name;
  f->n = n;
  for (uint64_t s = 1; s <= n && s <= MAXEV; s++) {
    stored *st = &f->ev[s];
    Rpc__V1__Event init = RPC__V1__EVENT__INIT;
    st->e = init;
    uuid_v7_str(st->id);
    snprintf(st->src, sizeof(st->src), "%s", name);
    snprintf(st->topic, sizeof(st->topic), "%s.t1", name);
    st->e.id = st->id;
    st->e.source = st->src;
    st->e.topic = st->topic;
    st->e.type = "Thing";
    st->e.seq = s;
  }
}

static int deliver(void *arg, const Rpc__V1__Event *ev) {
  world *w = arg;
  if (w->refuse_times > 0 && (uint64_t)w->refuse_seq == ev->seq) {
    w->refuse_times--;
    return ERR_UNAVAILABLE;
  }
  ck_assert_uint_lt(w->ngot, 4 * MAXEV);
  w->got_seq[w->ngot] = ev->seq;
  snprintf(w->got_src[w->ngot], sizeof(w->got_src[0]), "%s", ev->source);
  w->ngot++;
  return ERR_OK;
}

/* The batch consumer: deliver() on each in turn (so refuse_seq works the
 * same), taking at most take_max of a run; checks that a run is
 * consecutive. */
static int deliver_batch(void *arg, const Rpc__V1__Event *const *ev, size_t n,
                         size_t *taken) {
  world *w = arg;
  ck_assert_uint_ge(n, 1);
  ck_assert_uint_lt(w->nruns, 4 * MAXEV);
  w->runs[w->nruns++] = n;
  for (size_t i = 1; i < n; i++) {
    ck_assert_uint_eq(ev[i]->seq, ev[0]->seq + i);
    ck_assert_str_eq(ev[i]->source, ev[0]->source);
  }
  size_t k = 0;
  for (; k < n && (w->take_max == 0 || k < w->take_max); k++)
    if (deliver(arg, ev[k]) != ERR_OK) break;
  *taken = k;
  return k == n ? ERR_OK : ERR_UNAVAILABLE;
}

static int backfill(void *arg, const char *source, uint64_t after_seq,
                    uint64_t up_to, uint32_t limit, bus_backfill *out) {
  world *w = arg;
  fake_src *f = strcmp(source, w->a.name) == 0 ? &w->a : &w->b;
  if (f->calls < 64) {
    f->call_after[f->calls] = after_seq;
    f->call_upto[f->calls] = up_to;
    f->call_limit[f->calls] = limit;
  }
  f->calls++;
  if (f->fail_next > 0) {
    f->fail_next--;
    return ERR_UNAVAILABLE;
  }
  if (after_seq < f->gone_upto) return ERR_NOTFOUND;
  if (f->garbage_next > 0) {
    f->garbage_next--;
    return bus_backfill_add_replay(out, "\xff\xff\xff", 3);
  }
  if (f->lagging) return ERR_OK;
  uint64_t to = f->over_limit ? f->n : after_seq + limit;
  if (to > f->n) to = f->n;
  if (f->use_replay) {
    Rpc__V1__ReplayResponse r = RPC__V1__REPLAY_RESPONSE__INIT;
    Rpc__V1__Event *list[MAXEV];
    size_t k = 0;
    for (uint64_t s = after_seq + 1; s <= to; s++) list[k++] = &f->ev[s].e;
    r.events = list;
    r.n_events = k;
    r.last_seq = f->n;
    size_t len = rpc__v1__replay_response__get_packed_size(&r);
    uint8_t *buf = malloc(len + 1);
    rpc__v1__replay_response__pack(&r, buf);
    int rc = bus_backfill_add_replay(out, buf, len);
    free(buf);
    return rc;
  }
  if (f->add_noise) {
    /* Another source's event, an old one, then ours newest first. */
    fake_src *o = f == &w->a ? &w->b : &w->a;
    if (o->n >= 1) ck_assert_int_eq(bus_backfill_add(out, &o->ev[1].e), ERR_OK);
    if (after_seq >= 1)
      ck_assert_int_eq(bus_backfill_add(out, &f->ev[after_seq].e), ERR_OK);
    Rpc__V1__Event bad = f->ev[after_seq + 1].e;
    bad.id = "not-a-uuid";
    ck_assert_int_eq(bus_backfill_add(out, &bad), ERR_OK);
    for (uint64_t s = to; s > after_seq; s--) {
      ck_assert_int_eq(bus_backfill_add(out, &f->ev[s].e), ERR_OK);
    }
  } else {
    for (uint64_t s = after_seq + 1; s <= to; s++) {
      ck_assert_int_eq(bus_backfill_add(out, &f->ev[s].e), ERR_OK);
    }
  }
  if (f->report_last) bus_backfill_set_last_seq(out, f->n);
  return ERR_OK;
}

static bus_tracker *mk_tracker(bool with_backfill,
                               void (*tweak)(bus_tracker_options *)) {
  bus_tracker_options o;
  bus_tracker_options_init(&o);
  if (W->batch)
    o.deliver_batch = deliver_batch;
  else
    o.deliver = deliver;
  o.deliver_arg = W;
  if (with_backfill) {
    o.backfill = backfill;
    o.backfill_arg = W;
  }
  if (tweak != NULL) tweak(&o);
  bus_tracker *t = NULL;
  ck_assert_int_eq(bus_tracker_new(&o, &t), ERR_OK);
  return t;
}

static void setup(void) {
  W = calloc(1, sizeof(*W));
  fill(&W->a, "a", 0);
  fill(&W->b, "b", 0);
}

static void setup_batch(void) {
  setup();
  W->batch = true;
}

static void teardown(void) { free(W); }

static void offer(bus_tracker *t, fake_src *f, uint64_t seq, int64_t now) {
  ck_assert_uint_le(seq, f->n);
  ck_assert_int_eq(bus_tracker_offer(t, &f->ev[seq].e, now), ERR_OK);
}

/* Delivered seqs (one source) are exactly from..to in order. */
static void assert_got_range(const char *src, uint64_t from, uint64_t to) {
  uint64_t want = from;
  for (size_t i = 0; i < W->ngot; i++) {
    if (strcmp(W->got_src[i], src) != 0) continue;
    ck_assert_msg(W->got_seq[i] == want,
                  "%s: delivery %zu is seq %llu, want %llu", src, i,
                  (unsigned long long)W->got_seq[i], (unsigned long long)want);
    want++;
  }
  ck_assert_msg(want == to + 1, "%s: delivered up to %llu, want %llu", src,
                (unsigned long long)(want - 1), (unsigned long long)to);
}

/* A small deterministic xorshift generator (the C library one is banned
 * in this tree). */
static uint32_t rng_state = 12345;
static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

START_TEST(in_order_events_are_delivered_once_each) {
  fill(&W->a, "a", 5);
  bus_tracker *t = mk_tracker(true, NULL);
  for (uint64_t s = 1; s <= 5; s++) offer(t, &W->a, s, 0);
  assert_got_range("a", 1, 5);
  ck_assert_int_eq(W->a.calls, 0);
  uint64_t pos = 0;
  ck_assert_int_eq(bus_tracker_position(t, "a", &pos), ERR_OK);
  ck_assert_uint_eq(pos, 5);
  ck_assert(!bus_tracker_pending(t, "a"));
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.received, 5);
  ck_assert_uint_eq(st.delivered, 5);
  ck_assert_uint_eq(st.gaps, 0);
  bus_tracker_free(t);
}
END_TEST

START_TEST(duplicates_are_dropped_and_counted) {
  fill(&W->a, "a", 3);
  bus_tracker *t = mk_tracker(true, NULL);
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 2, 0);
  offer(t, &W->a, 2, 0);
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 3, 0);
  assert_got_range("a", 1, 3);
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.duplicates, 2);
  ck_assert_uint_eq(st.received, 5);
  ck_assert_int_eq(W->a.calls, 0);
  bus_tracker_free(t);
}
END_TEST

START_TEST(without_position_the_first_event_seen_starts_the_sequence) {
  fill(&W->a, "a", 120);
  bus_tracker *t = mk_tracker(true, NULL);
  uint64_t pos;
  ck_assert_int_eq(bus_tracker_position(t, "a", &pos), ERR_NOTFOUND);
  offer(t, &W->a, 100, 0);
  offer(t, &W->a, 101, 0);
  assert_got_range("a", 100, 101);
  ck_assert_int_eq(W->a.calls, 0); /* no backfill of 1..99 */
  bus_tracker_free(t);
}
END_TEST

START_TEST(gap_calls_backfill_with_the_missing_range_then_delivers_held) {
  fill(&W->a, "a", 10);
  bus_tracker *t = mk_tracker(true, NULL);
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 2, 0);
  offer(t, &W->a, 6, 0);
  ck_assert_int_eq(W->a.calls, 1);
  ck_assert_uint_eq(W->a.call_after[0], 2);
  ck_assert_uint_eq(W->a.call_upto[0], 5);
  ck_assert_uint_eq(W->a.call_limit[0], 256);
  /* Like a real Replay, the source answered with everything after 2 (up
   * to the limit), not just 3..5: all of it is delivered, in order, and
   * the held 6 exactly once. */
  assert_got_range("a", 1, 10);
  offer(t, &W->a, 7, 0);
  assert_got_range("a", 1, 10);
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.gaps, 1);
  ck_assert_uint_eq(st.backfilled, 7); /* 3..5 and 7..10 */
  ck_assert_uint_eq(st.delivered, 10);
  ck_assert_uint_eq(st.duplicates, 1);
  ck_assert_uint_eq(st.backfill_calls, 1);
  ck_assert(!bus_tracker_pending(t, "a"));
  bus_tracker_free(t);
}
END_TEST

static void limit3(bus_tracker_options *o) { o->backfill_limit = 3; }

START_TEST(backfill_pages_through_the_limit) {
  fill(&W->a, "a", 12);
  bus_tracker *t = mk_tracker(true, limit3);
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 11, 0);
  /* 2..10 in pages of 3: after 1, 4, 7; the held 11 closes the gap. */
  ck_assert_int_eq(W->a.calls, 3);
  ck_assert_uint_eq(W->a.call_after[0], 1);
  ck_assert_uint_eq(W->a.call_after[1], 4);
  ck_assert_uint_eq(W->a.call_after[2], 7);
  ck_assert_uint_eq(W->a.call_upto[2], 10);
  ck_assert_uint_eq(W->a.call_limit[0], 3);
  assert_got_range("a", 1, 11);
  bus_tracker_free(t);
}
END_TEST

START_TEST(failed_backfill_keeps_the_gap_and_retries_with_backoff) {
  fill(&W->a, "a", 8);
  W->a.fail_next = 2;
  bus_tracker *t = mk_tracker(true, NULL); /* retry 100 ms doubling */
  offer(t, &W->a, 1, 1000);
  offer(t, &W->a, 5, 1000); /* gap; call 1 fails, retry at 1100 */
  ck_assert_int_eq(W->a.calls, 1);
  offer(t, &W->a, 6, 1010); /* held, no call while waiting */
  offer(t, &W->a, 8, 1020);
  ck_assert_int_eq(W->a.calls, 1);
  assert_got_range("a", 1, 1);
  ck_assert(bus_tracker_pending(t, "a"));
  bus_tracker_poll(t, 1099);
  ck_assert_int_eq(W->a.calls, 1);
  bus_tracker_poll(t, 1100); /* call 2 fails, retry at 1300 */
  ck_assert_int_eq(W->a.calls, 2);
  bus_tracker_poll(t, 1299);
  ck_assert_int_eq(W->a.calls, 2);
  bus_tracker_poll(t, 1300); /* call 3 succeeds: 2..4, held 5 6, then 7 */
  assert_got_range("a", 1, 8);
  ck_assert_uint_eq(W->a.call_after[2], 1);
  ck_assert_uint_eq(W->a.call_upto[2], 4);
  ck_assert(!bus_tracker_pending(t, "a"));
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.backfill_failures, 2);
  ck_assert_uint_eq(st.gaps, 1);
  ck_assert_uint_eq(st.backfilled, 4); /* 2, 3, 4, 7 */
  ck_assert_uint_eq(st.lost, 0);
  bus_tracker_free(t);
}
END_TEST

static void cap_backoff(bus_tracker_options *o) {
  o->retry_min_ms = 10;
  o->retry_max_ms = 40;
}

START_TEST(backoff_doubles_up_to_the_cap_and_resets_after_success) {
  fill(&W->a, "a", 3);
  W->a.fail_next = 5;
  bus_tracker *t = mk_tracker(true, cap_backoff);
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 3, 0);   /* fail 1 -> +10 */
  bus_tracker_poll(t, 10); /* fail 2 -> +20 */
  bus_tracker_poll(t, 29);
  ck_assert_int_eq(W->a.calls, 2);
  bus_tracker_poll(t, 30); /* fail 3 -> +40 */
  bus_tracker_poll(t, 70); /* fail 4 -> +40 (cap) */
  ck_assert_int_eq(W->a.calls, 4);
  bus_tracker_poll(t, 109);
  ck_assert_int_eq(W->a.calls, 4);
  bus_tracker_poll(t, 110); /* fail 5 */
  bus_tracker_poll(t, 150); /* ok */
  assert_got_range("a", 1, 3);
  /* A new failure starts again from the minimum. */
  fill(&W->a, "a", 5);
  W->a.fail_next = 1;
  offer(t, &W->a, 5, 200);
  ck_assert_int_eq(W->a.calls, 7);
  bus_tracker_poll(t, 209);
  ck_assert_int_eq(W->a.calls, 7);
  bus_tracker_poll(t, 210);
  assert_got_range("a", 1, 5);
  bus_tracker_free(t);
}
END_TEST

static void small_buffer(bus_tracker_options *o) { o->max_buffered = 3; }

START_TEST(full_buffer_drops_highest_and_backfill_fetches_them_later) {
  fill(&W->a, "a", 10);
  W->a.fail_next = 1000;
  bus_tracker *t = mk_tracker(true, small_buffer);
  offer(t, &W->a, 1, 0);
  for (uint64_t s = 3; s <= 10; s++) offer(t, &W->a, s, 0);
  /* Held 3, 4, 5; 6..10 dropped. */
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.buffer_dropped, 5);
  /* Out of order: a lower seq displaces the highest held one. */
  offer(t, &W->a, 2, 0);
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.buffer_dropped, 6);
  assert_got_range("a", 1, 1);
  W->a.fail_next = 0;
  bus_tracker_poll(t, 100000);
  assert_got_range("a", 1, 10);
  ck_assert(!bus_tracker_pending(t, "a"));
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.lost, 0);
  bus_tracker_free(t);
}
END_TEST

START_TEST(position_catches_up_until_the_source_has_nothing_more) {
  fill(&W->a, "a", 7);
  bus_tracker *t = mk_tracker(true, NULL);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 0), ERR_OK);
  ck_assert(bus_tracker_pending(t, "a"));
  bus_tracker_poll(t, 0);
  assert_got_range("a", 1, 7);
  /* One call with the events, one that finds nothing more. */
  ck_assert_int_eq(W->a.calls, 2);
  ck_assert_uint_eq(W->a.call_after[0], 0);
  ck_assert_uint_eq(W->a.call_upto[0], 0);
  ck_assert_uint_eq(W->a.call_after[1], 7);
  ck_assert(!bus_tracker_pending(t, "a"));
  /* Live events continue the sequence. */
  fill(&W->a, "a", 8);
  offer(t, &W->a, 8, 0);
  assert_got_range("a", 1, 8);
  ck_assert_int_eq(W->a.calls, 2);
  bus_tracker_free(t);
}
END_TEST

START_TEST(catch_up_stops_at_the_reported_last_seq) {
  fill(&W->a, "a", 7);
  W->a.report_last = true;
  bus_tracker *t = mk_tracker(true, NULL);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 3), ERR_OK);
  bus_tracker_poll(t, 0);
  ck_assert_int_eq(W->a.calls, 1);
  ck_assert_uint_eq(W->a.call_after[0], 3);
  assert_got_range("a", 4, 7);
  bus_tracker_free(t);
}
END_TEST

START_TEST(live_events_at_or_before_the_position_are_duplicates) {
  fill(&W->a, "a", 6);
  bus_tracker *t = mk_tracker(true, NULL);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 5), ERR_OK);
  offer(t, &W->a, 3, 0);
  offer(t, &W->a, 5, 0);
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.duplicates, 2);
  offer(t, &W->a, 6, 0); /* catches up, then delivers 6 */
  assert_got_range("a", 6, 6);
  bus_tracker_free(t);
}
END_TEST

START_TEST(replay_answers_are_decoded_and_garbage_is_retried) {
  fill(&W->a, "a", 30);
  W->a.use_replay = true;
  W->a.garbage_next = 1;
  bus_tracker *t = mk_tracker(true, limit3);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 0), ERR_OK);
  bus_tracker_poll(t, 0); /* garbage: ERR_PROTO -> retry */
  ck_assert_uint_eq(W->ngot, 0);
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.backfill_failures, 1);
  bus_tracker_poll(t, 100);
  assert_got_range("a", 1, 30);
  /* 10 pages of 3; last_seq (30) ends the catch-up without an extra call. */
  ck_assert_int_eq(W->a.calls, 11);
  bus_tracker_free(t);
}
END_TEST

START_TEST(events_past_the_limit_are_left_for_the_next_call) {
  fill(&W->a, "a", 10);
  W->a.over_limit = true;
  bus_tracker *t = mk_tracker(true, limit3);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 0), ERR_OK);
  bus_tracker_poll(t, 0);
  assert_got_range("a", 1, 10);
  /* after 0, 3, 6, 9 (one event), then an empty answer */
  ck_assert_int_eq(W->a.calls, 5);
  ck_assert_uint_eq(W->a.call_after[1], 3);
  ck_assert_uint_eq(W->a.call_after[3], 9);
  bus_tracker_free(t);
}
END_TEST

static void tiny_replay(bus_tracker_options *o) { o->max_replay_bytes = 64; }

START_TEST(replay_answer_larger_than_the_cap_is_refused_and_retried) {
  fill(&W->a, "a", 20);
  W->a.use_replay = true;
  bus_tracker *t = mk_tracker(true, tiny_replay);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 0), ERR_OK);
  bus_tracker_poll(t, 0);
  ck_assert_uint_eq(W->ngot, 0);
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.backfill_failures, 1);
  ck_assert(bus_tracker_pending(t, "a"));
  bus_tracker_free(t);
}
END_TEST

START_TEST(
    backfill_batches_are_sorted_and_foreign_old_or_invalid_events_ignored) {
  fill(&W->a, "a", 9);
  fill(&W->b, "b", 1);
  W->a.add_noise = true;
  bus_tracker *t = mk_tracker(true, NULL);
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 2, 0);
  offer(t, &W->a, 9, 0);
  assert_got_range("a", 1, 9);
  assert_got_range("b", 1, 0); /* nothing of b delivered */
  bus_tracker_free(t);
}
END_TEST

START_TEST(source_that_forgot_events_makes_the_tracker_skip_them) {
  fill(&W->a, "a", 9);
  W->a.gone_upto = 5;
  bus_tracker *t = mk_tracker(true, NULL);
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 8, 0);
  ck_assert_int_eq(W->a.calls, 1);
  /* 2..7 skipped, 8 delivered. */
  ck_assert_uint_eq(W->ngot, 2);
  ck_assert_uint_eq(W->got_seq[1], 8);
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.lost, 6);
  ck_assert(!bus_tracker_pending(t, "a"));
  offer(t, &W->a, 9, 0);
  ck_assert_uint_eq(W->got_seq[2], 9);
  bus_tracker_free(t);
}
END_TEST

START_TEST(without_backfill_gaps_are_skipped_and_counted_lost) {
  fill(&W->a, "a", 9);
  bus_tracker *t = mk_tracker(false, NULL);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 0), ERR_OK);
  bus_tracker_poll(t, 0); /* nothing to ask: catch-up is dropped */
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 5, 0);
  offer(t, &W->a, 6, 0);
  ck_assert_uint_eq(W->ngot, 3);
  ck_assert_uint_eq(W->got_seq[1], 5);
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.lost, 3);
  ck_assert_uint_eq(st.gaps, 1);
  bus_tracker_free(t);
}
END_TEST

START_TEST(refused_delivery_is_retried_before_anything_later) {
  fill(&W->a, "a", 4);
  W->refuse_seq = 2;
  W->refuse_times = 2;
  bus_tracker *t = mk_tracker(true, NULL);
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 2, 0); /* refused, retry at 100 */
  offer(t, &W->a, 3, 10);
  assert_got_range("a", 1, 1);
  bus_tracker_poll(t, 50);
  assert_got_range("a", 1, 1);
  bus_tracker_poll(t, 100); /* refused again, retry at 300 */
  assert_got_range("a", 1, 1);
  bus_tracker_poll(t, 300);
  assert_got_range("a", 1, 3);
  offer(t, &W->a, 4, 400);
  assert_got_range("a", 1, 4);
  ck_assert_int_eq(W->a.calls, 0); /* held events needed no fetch */
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.deliver_refused, 2);
  bus_tracker_free(t);
}
END_TEST

START_TEST(refused_backfilled_event_is_redelivered) {
  fill(&W->a, "a", 5);
  W->refuse_seq = 3;
  W->refuse_times = 1;
  bus_tracker *t = mk_tracker(true, NULL);
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 5, 0); /* backfill 2..4; 3 refused */
  assert_got_range("a", 1, 2);
  bus_tracker_poll(t, 100);
  assert_got_range("a", 1, 5);
  bus_tracker_free(t);
}
END_TEST

static void idle200(bus_tracker_options *o) { o->idle_check_ms = 200; }

START_TEST(idle_check_finds_events_lost_at_the_tail) {
  fill(&W->a, "a", 5);
  bus_tracker *t = mk_tracker(true, idle200);
  offer(t, &W->a, 1, 1000);
  offer(t, &W->a, 2, 1000);
  offer(t, &W->a, 3, 1000); /* 4 and 5 lost, nothing after them */
  bus_tracker_poll(t, 1100);
  ck_assert_int_eq(W->a.calls, 0);
  bus_tracker_poll(t, 1200);
  assert_got_range("a", 1, 5);
  ck_assert_uint_eq(W->a.call_after[0], 3);
  ck_assert_uint_eq(W->a.call_upto[0], 0);
  int calls = W->a.calls;
  bus_tracker_poll(t, 1300); /* not again before another idle period */
  ck_assert_int_eq(W->a.calls, calls);
  bus_tracker_poll(t, 1400);
  ck_assert_int_gt(W->a.calls, calls);
  bus_tracker_free(t);
}
END_TEST

START_TEST(a_stuck_source_does_not_hold_back_another) {
  fill(&W->a, "a", 5);
  fill(&W->b, "b", 3);
  W->a.fail_next = 1000;
  bus_tracker *t = mk_tracker(true, NULL);
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 3, 0);
  offer(t, &W->b, 1, 0);
  offer(t, &W->b, 2, 0);
  bus_tracker_poll(t, 100);
  offer(t, &W->b, 3, 100);
  assert_got_range("a", 1, 1);
  assert_got_range("b", 1, 3);
  W->a.fail_next = 0;
  bus_tracker_poll(t, 100000);
  assert_got_range("a", 1, 5);
  bus_tracker_free(t);
}
END_TEST

START_TEST(lagging_source_answer_is_not_progress_and_is_retried) {
  fill(&W->a, "a", 4);
  W->a.lagging = true;
  bus_tracker *t = mk_tracker(true, NULL);
  offer(t, &W->a, 1, 0);
  offer(t, &W->a, 4, 0);
  ck_assert_int_eq(W->a.calls, 1);
  bus_tracker_poll(t, 50);
  ck_assert_int_eq(W->a.calls, 1); /* waits for the backoff */
  W->a.lagging = false;
  bus_tracker_poll(t, 100);
  assert_got_range("a", 1, 4);
  bus_tracker_free(t);
}
END_TEST

static void two_sources(bus_tracker_options *o) { o->max_sources = 2; }

START_TEST(sources_past_the_limit_are_refused) {
  bus_tracker *t = mk_tracker(true, two_sources);
  fill(&W->a, "a", 1);
  fill(&W->b, "b", 1);
  offer(t, &W->a, 1, 0);
  offer(t, &W->b, 1, 0);
  fake_src *c = calloc(1, sizeof(*c));
  fill(c, "c", 1);
  ck_assert_int_eq(bus_tracker_offer(t, &c->ev[1].e, 0), ERR_TOOBIG);
  ck_assert_int_eq(bus_tracker_set_position(t, "c", 0), ERR_TOOBIG);
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.rejected, 1);
  ck_assert_uint_eq(W->ngot, 2);
  free(c);
  bus_tracker_free(t);
}
END_TEST

START_TEST(invalid_events_and_arguments_are_refused) {
  fill(&W->a, "a", 2);
  bus_tracker *t = mk_tracker(true, NULL);
  Rpc__V1__Event e = W->a.ev[1].e;
  e.seq = 0;
  ck_assert_int_eq(bus_tracker_offer(t, &e, 0), ERR_INVAL);
  e = W->a.ev[1].e;
  e.id = "x";
  ck_assert_int_eq(bus_tracker_offer(t, &e, 0), ERR_INVAL);
  ck_assert_int_eq(bus_tracker_offer(t, NULL, 0), ERR_INVAL);
  ck_assert_int_eq(bus_tracker_set_position(t, "", 0), ERR_INVAL);
  ck_assert_int_eq(bus_tracker_set_position(t, "bad\nname", 0), ERR_INVAL);
  ck_assert_uint_eq(W->ngot, 0);
  bus_tracker_free(t);
  bus_tracker_options o;
  bus_tracker_options_init(&o);
  bus_tracker *t2 = NULL;
  ck_assert_int_eq(bus_tracker_new(&o, &t2), ERR_INVAL); /* no deliver */
  o.deliver = deliver;
  o.backfill_limit = BUS_MAX_BACKFILL_LIMIT + 1;
  ck_assert_int_eq(bus_tracker_new(&o, &t2), ERR_INVAL);
  o.backfill_limit = 0;
  o.retry_min_ms = 500;
  o.retry_max_ms = 100;
  ck_assert_int_eq(bus_tracker_new(&o, &t2), ERR_INVAL);
  ck_assert_ptr_null(t2);
  bus_tracker_free(NULL);
}
END_TEST

START_TEST(interrupt_stops_further_work) {
  fill(&W->a, "a", 5);
  bus_tracker *t = mk_tracker(true, NULL);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 0), ERR_OK);
  bus_tracker_interrupt(t);
  bus_tracker_poll(t, 0);
  ck_assert_int_eq(W->a.calls, 0);
  ck_assert_uint_eq(W->ngot, 0);
  bus_tracker_free(t);
}
END_TEST

START_TEST(long_random_loss_pattern_heals_exactly_once_in_order) {
  /* 2000 events, about a third lost, some repeated, some reordered
   * locally, and backfill failing every third call. */
  fill(&W->a, "a", MAXEV);
  bus_tracker *t = mk_tracker(true, limit3);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 0), ERR_OK);
  rng_state = 777;
  int64_t now = 0;
  int fails = 0;
  for (uint64_t s = 1; s <= MAXEV; s++) {
    now += 1;
    if (++fails % 3 == 0) W->a.fail_next = 1;
    int r = (int)(rng() % 10);
    if (r < 3) continue; /* lost */
    offer(t, &W->a, s, now);
    if (r == 9 && s > 5) offer(t, &W->a, s - 5, now); /* a late repeat */
    if (s % 50 == 0) bus_tracker_poll(t, now);
  }
  for (int i = 0; i < 200 && (bus_tracker_pending(t, "a") || W->ngot < MAXEV);
       i++) {
    now += 10000;
    W->a.fail_next = 0;
    bus_tracker_poll(t, now);
  }
  assert_got_range("a", 1, MAXEV);
  bus_tracker_free(t);
}
END_TEST

/* ---------------------------------------------------- batch consumer --- */

START_TEST(batch_consumer_gets_a_backfill_page_in_one_call) {
  W->batch = true;
  fill(&W->a, "a", 600);
  bus_tracker *t = mk_tracker(true, NULL);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 0), ERR_OK);
  bus_tracker_poll(t, 0);
  assert_got_range("a", 1, 600);
  /* Pages of 256: three calls, not 600. */
  ck_assert_uint_eq(W->nruns, 3);
  ck_assert_uint_eq(W->runs[0], 256);
  ck_assert_uint_eq(W->runs[1], 256);
  ck_assert_uint_eq(W->runs[2], 88);
  bus_tracker_free(t);
}
END_TEST

START_TEST(batch_consumer_gets_held_events_as_one_run) {
  W->batch = true;
  fill(&W->a, "a", 8);
  W->a.fail_next = 1; /* the gap stays open: 4..8 are held */
  bus_tracker *t = mk_tracker(true, NULL);
  offer(t, &W->a, 1, 0);
  for (uint64_t s = 4; s <= 8; s++) offer(t, &W->a, s, 0);
  assert_got_range("a", 1, 1);
  /* 2 and 3 arrive live during the backoff: held with the rest. */
  offer(t, &W->a, 2, 10);
  offer(t, &W->a, 3, 10);
  assert_got_range("a", 1, 1);
  bus_tracker_poll(t, 200);
  assert_got_range("a", 1, 8);
  ck_assert_uint_eq(W->nruns, 2); /* 1 live, then 2..8 at once */
  ck_assert_uint_eq(W->runs[1], 7);
  ck_assert_int_eq(W->a.calls, 1); /* the failed one only */
  bus_tracker_free(t);
}
END_TEST

START_TEST(batch_consumer_taking_a_prefix_gets_the_rest_again_in_order) {
  W->batch = true;
  W->take_max = 7;
  fill(&W->a, "a", 50);
  bus_tracker *t = mk_tracker(true, NULL);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 0), ERR_OK);
  int64_t now = 0;
  for (int i = 0; i < 100 && W->ngot < 50; i++) {
    bus_tracker_poll(t, now);
    now += 10000;
  }
  assert_got_range("a", 1, 50); /* each exactly once, in order */
  uint64_t pos = 0;
  ck_assert_int_eq(bus_tracker_position(t, "a", &pos), ERR_OK);
  ck_assert_uint_eq(pos, 50);
  bus_stats st;
  bus_tracker_get_stats(t, &st);
  ck_assert_uint_eq(st.delivered, 50);
  /* Each round: 7 taken of the page, the refused one held and delivered
   * alone on the retry, so 8 per round, 6 partial takes before 49..50. */
  ck_assert_uint_eq(st.deliver_refused, 6);
  bus_tracker_free(t);
}
END_TEST

START_TEST(batch_consumer_with_random_loss_and_partial_takes_heals_once) {
  W->batch = true;
  fill(&W->a, "a", MAXEV);
  bus_tracker *t = mk_tracker(true, NULL);
  ck_assert_int_eq(bus_tracker_set_position(t, "a", 0), ERR_OK);
  rng_state = 4242;
  int64_t now = 0;
  for (uint64_t s = 1; s <= MAXEV; s++) {
    now += 1;
    W->take_max = rng() % 4 == 0 ? 1 + rng() % 20 : 0;
    if (rng() % 3 == 0) continue; /* lost */
    offer(t, &W->a, s, now);
    if (s % 40 == 0) bus_tracker_poll(t, now);
  }
  W->take_max = 0;
  for (int i = 0; i < 200 && (bus_tracker_pending(t, "a") || W->ngot < MAXEV);
       i++) {
    now += 10000;
    bus_tracker_poll(t, now);
  }
  assert_got_range("a", 1, MAXEV);
  bus_tracker_free(t);
}
END_TEST

START_TEST(tracker_needs_a_delivery_function) {
  bus_tracker_options o;
  bus_tracker_options_init(&o);
  bus_tracker *t = NULL;
  ck_assert_int_eq(bus_tracker_new(&o, &t), ERR_INVAL);
  ck_assert_ptr_null(t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("bus_tracker");
  const TTest *kAll[] = {
      in_order_events_are_delivered_once_each,
      duplicates_are_dropped_and_counted,
      without_position_the_first_event_seen_starts_the_sequence,
      gap_calls_backfill_with_the_missing_range_then_delivers_held,
      backfill_pages_through_the_limit,
      failed_backfill_keeps_the_gap_and_retries_with_backoff,
      backoff_doubles_up_to_the_cap_and_resets_after_success,
      full_buffer_drops_highest_and_backfill_fetches_them_later,
      position_catches_up_until_the_source_has_nothing_more,
      catch_up_stops_at_the_reported_last_seq,
      live_events_at_or_before_the_position_are_duplicates,
      replay_answers_are_decoded_and_garbage_is_retried,
      backfill_batches_are_sorted_and_foreign_old_or_invalid_events_ignored,
      events_past_the_limit_are_left_for_the_next_call,
      replay_answer_larger_than_the_cap_is_refused_and_retried,
      source_that_forgot_events_makes_the_tracker_skip_them,
      without_backfill_gaps_are_skipped_and_counted_lost,
      refused_delivery_is_retried_before_anything_later,
      refused_backfilled_event_is_redelivered,
      idle_check_finds_events_lost_at_the_tail,
      a_stuck_source_does_not_hold_back_another,
      lagging_source_answer_is_not_progress_and_is_retried,
      sources_past_the_limit_are_refused,
      invalid_events_and_arguments_are_refused,
      interrupt_stops_further_work,
      long_random_loss_pattern_heals_exactly_once_in_order,
  };
  TCase *tc = tcase_create("tracker");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, in_order_events_are_delivered_once_each);
  tcase_add_test(tc, duplicates_are_dropped_and_counted);
  tcase_add_test(tc, without_position_the_first_event_seen_starts_the_sequence);
  tcase_add_test(tc,
                 gap_calls_backfill_with_the_missing_range_then_delivers_held);
  tcase_add_test(tc, backfill_pages_through_the_limit);
  tcase_add_test(tc, failed_backfill_keeps_the_gap_and_retries_with_backoff);
  tcase_add_test(tc, backoff_doubles_up_to_the_cap_and_resets_after_success);
  tcase_add_test(tc, full_buffer_drops_highest_and_backfill_fetches_them_later);
  tcase_add_test(tc, position_catches_up_until_the_source_has_nothing_more);
  tcase_add_test(tc, catch_up_stops_at_the_reported_last_seq);
  tcase_add_test(tc, live_events_at_or_before_the_position_are_duplicates);
  tcase_add_test(tc, replay_answers_are_decoded_and_garbage_is_retried);
  tcase_add_test(
      tc,
      backfill_batches_are_sorted_and_foreign_old_or_invalid_events_ignored);
  tcase_add_test(tc, events_past_the_limit_are_left_for_the_next_call);
  tcase_add_test(tc, replay_answer_larger_than_the_cap_is_refused_and_retried);
  tcase_add_test(tc, source_that_forgot_events_makes_the_tracker_skip_them);
  tcase_add_test(tc, without_backfill_gaps_are_skipped_and_counted_lost);
  tcase_add_test(tc, refused_delivery_is_retried_before_anything_later);
  tcase_add_test(tc, refused_backfilled_event_is_redelivered);
  tcase_add_test(tc, idle_check_finds_events_lost_at_the_tail);
  tcase_add_test(tc, a_stuck_source_does_not_hold_back_another);
  tcase_add_test(tc, lagging_source_answer_is_not_progress_and_is_retried);
  tcase_add_test(tc, sources_past_the_limit_are_refused);
  tcase_add_test(tc, invalid_events_and_arguments_are_refused);
  tcase_add_test(tc, interrupt_stops_further_work);
  tcase_add_test(tc, long_random_loss_pattern_heals_exactly_once_in_order);
  tcase_add_test(tc, batch_consumer_gets_a_backfill_page_in_one_call);
  tcase_add_test(tc, batch_consumer_gets_held_events_as_one_run);
  tcase_add_test(tc,
                 batch_consumer_taking_a_prefix_gets_the_rest_again_in_order);
  tcase_add_test(tc,
                 batch_consumer_with_random_loss_and_partial_takes_heals_once);
  tcase_add_test(tc, tracker_needs_a_delivery_function);
  suite_add_tcase(s, tc);
  /* Every test above again with a batch consumer (deliver_batch taking
   * runs): the same deliveries, order and backfill calls. */
  TCase *tb = tcase_create("tracker_batch");
  tcase_add_checked_fixture(tb, setup_batch, teardown);
  for (size_t i = 0; i < sizeof kAll / sizeof kAll[0]; i++)
    tcase_add_test(tb, kAll[i]);
  suite_add_tcase(s, tb);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
