/*
 * queue.c - the Redis side of the delivery queue (see queue.h): the
 * stream and its group, the workers' read/attempt/ack loop, the delayed
 * set and its mover, the sweep, the depth gauges.
 *
 * Each worker is a thread with its own consumer name (host, pid, a random
 * part: a restarted process is a new consumer, and its predecessor's
 * unacknowledged jobs are taken over by XAUTOCLAIM). Reads block at most
 * READ_BLOCK_MS so that stopping is prompt; the cache's command timeout is
 * set above that by main.c.
 */
#include "services/notifications/queue.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/svc/periodic.h"
#include "services/notifications/attempt.h"

#define STREAM "{notifications}:jobs"
#define DELAYED "{notifications}:delayed"
#define GROUP "workers"
#define READ_BLOCK_MS "500"
#define AUTOCLAIM_COUNT "4"
/* Jobs a worker reads (and claims in one transaction) at a time: few, so
 * that a worker does not hold many jobs while the others idle (it sends
 * them one after the other). */
#define READ_COUNT 4
#define READ_COUNT_S "4"
#define SWEEP_BATCH 200
#define BACKOFF_CAP_MS (3600 * 1000)

/* Due members "tid:id" of the delayed set to the stream, atomically. */
static const char kMoveScript[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], "
    "'LIMIT', 0, 100)\n"
    "for _, m in ipairs(due) do\n"
    "  local sep = string.find(m, ':', 1, true)\n"
    "  if sep then\n"
    "    redis.call('XADD', KEYS[2], '*', 't', string.sub(m, 1, sep - 1), "
    "'d', string.sub(m, sep + 1))\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "return #due\n";

/* Jobs (ARGV: tid, id, tid, id, ...) to the stream in one round trip. */
static const char kPushScript[] =
    "for i = 1, #ARGV - 1, 2 do\n"
    "  redis.call('XADD', KEYS[1], '*', 't', ARGV[i], 'd', ARGV[i + 1])\n"
    "end\n"
    "return #ARGV / 2\n";
#define PUSH_CHUNK 100 /* jobs per script call (cache_eval: <= 256 args) */

/* Acknowledge and drop a job (one group: nobody else needs the entry). */
static const char kAckScript[] =
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
    "return redis.call('XDEL', KEYS[1], ARGV[2])\n";

typedef struct worker {
  struct queue *q;
  pthread_t thread;
  char consumer[96];
  int64_t next_autoclaim_ms;
} worker;

struct queue {
  queue_config c;
  attempt_config ac;
  cache_script *move, *ack, *push;
  worker *workers;
  int nstarted;
  atomic_bool stop;
  periodic *mover;
  int64_t next_sweep_ms;
  metrics_child *ready_depth, *delayed_depth, *pending;
};

int64_t queue_backoff_ms(int64_t base_ms, int attempt) {
  int64_t d = base_ms;
  for (int i = 1; i < attempt && d < BACKOFF_CAP_MS; i++) d *= 2;
  if (d > BACKOFF_CAP_MS) d = BACKOFF_CAP_MS;
  /* x [0.8, 1.2): retries of a burst of failures spread out. */
  return d * (800 + (int64_t)randombytes_uniform(400)) / 1000;
}

/* ------------------------------------------------------------ redis --- */

static int create_group(cache *r) {
  const char *argv[] = {"XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM"};
  int rc = cache_command(r, true, 6, argv, NULL, NULL);
  if (rc == ERR_DB && strstr(cache_last_error()->message, "BUSYGROUP") != NULL)
    rc = ERR_OK;
  return rc;
}

/* jobs[0..n), n <= PUSH_CHUNK, by kPushScript. */
static int push_chunk(queue *q, const store_job *jobs, size_t n) {
  const char *keys[] = {STREAM}, *args[2 * PUSH_CHUNK];
  for (size_t i = 0; i < n; i++) {
    args[2 * i] = jobs[i].tid;
    args[2 * i + 1] = jobs[i].id;
  }
  cache_reply *r = NULL;
  int rc = cache_eval(q->c.redis, q->push, 1, keys, (int)(2 * n), args, &r);
  cache_reply_free(r);
  return rc;
}

int queue_push(queue *q, const store_job *jobs, size_t n) {
  int rc = ERR_OK;
  for (size_t i = 0; i < n && rc == ERR_OK; i += PUSH_CHUNK)
    rc = push_chunk(q, &jobs[i], n - i < PUSH_CHUNK ? n - i : PUSH_CHUNK);
  if (rc != ERR_OK)
    log_warn("jobs not queued; the sweep will", "error", err_str(rc));
  return rc;
}

static void delay(queue *q, const store_job *j, int64_t in_ms) {
  char score[24], member[2 * UUID_STR_LEN + 2];
  snprintf(score, sizeof score, "%" PRId64, time_now_ms() + in_ms);
  snprintf(member, sizeof member, "%.*s:%.*s", UUID_STR_LEN, j->tid,
           UUID_STR_LEN, j->id);
  const char *argv[] = {"ZADD", DELAYED, score, member};
  if (cache_command(q->c.redis, true, 4, argv, NULL, NULL) != ERR_OK)
    log_warn("retry not scheduled; the sweep will", "delivery", j->id);
}

static void ack(queue *q, const char *entry) {
  const char *keys[] = {STREAM}, *args[] = {GROUP, entry};
  cache_reply *r = NULL;
  if (cache_eval(q->c.redis, q->ack, 1, keys, 2, args, &r) != ERR_OK)
    log_warn("job not acknowledged; it will come again", "entry", entry);
  cache_reply_free(r);
}

/* The string element i of r into out[cap]; false when it is not one. */
static bool str_at(const cache_reply *r, size_t i, char *out, size_t cap) {
  const char *s = NULL;
  size_t len = 0;
  const cache_reply *e = cache_reply_at(r, i);
  if (e == NULL || cache_reply_str(e, &s, &len) != ERR_OK || len >= cap)
    return false;
  memcpy(out, s, len);
  out[len] = '\0';
  return true;
}

/* An entry [id, [f, v, ...]] into its id and job. */
static bool parse_entry(const cache_reply *e, char *id, size_t cap,
                        store_job *job) {
  memset(job, 0, sizeof *job);
  if (!str_at(e, 0, id, cap)) return false;
  const cache_reply *f = cache_reply_at(e, 1);
  for (size_t i = 0; i + 1 < cache_reply_len(f); i += 2) {
    char k[4], v[UUID_STR_LEN + 1];
    if (!str_at(f, i, k, sizeof k) || !str_at(f, i + 1, v, sizeof v)) continue;
    if (strcmp(k, "t") == 0) uuid_canonical(v, job->tid);
    if (strcmp(k, "d") == 0) uuid_canonical(v, job->id);
  }
  return true;
}

/* ---------------------------------------------------------- workers --- */

/* The outcome of one job: a retry scheduled, the entry acknowledged. */
static void finish(queue *q, const store_job *job, const char *entry,
                   const attempt_result *res) {
  if (res->retry_in_ms > 0) delay(q, job, res->retry_in_ms);
  if (res->ack) ack(q, entry);
}

/* The entries of list (at most READ_COUNT of them): claimed together in
 * one transaction (store_claim_batch), then each claimed one sent and
 * recorded in turn and acknowledged after its record; spent ones are
 * acknowledged, leased ones left pending (XAUTOCLAIM brings them back). */
static void run_entries(queue *q, const cache_reply *list) {
  char ids[READ_COUNT][64];
  store_job jobs[READ_COUNT];
  int res[READ_COUNT];
  store_attempt at[READ_COUNT];
  size_t n = 0;
  for (size_t i = 0; i < cache_reply_len(list) && n < READ_COUNT; i++) {
    const cache_reply *e = cache_reply_at(list, i);
    if (e == NULL || cache_reply_type(e) != CACHE_REPLY_ARRAY ||
        !parse_entry(e, ids[n], sizeof ids[n], &jobs[n]))
      continue; /* a deleted entry (XAUTOCLAIM) or garbage */
    if (jobs[n].tid[0] == '\0' || jobs[n].id[0] == '\0') {
      log_warn("malformed job dropped", "entry", ids[n]);
      ack(q, ids[n]);
      continue;
    }
    n++;
  }
  if (n == 0) return;
  /* The last is sent after the others: its lease covers their sends, so
   * that only this worker sends any of them until it is done. */
  int64_t lease = q->ac.lease_ms + (int64_t)(n - 1) * q->c.send.timeout_ms;
  int rc =
      store_claim_batch(q->c.store, jobs, n, lease, ATTEMPT_SLACK_MS, res, at);
  if (rc != ERR_OK) { /* PostgreSQL down: XAUTOCLAIM brings them back */
    log_warn("jobs not claimed; retried later", "error", err_str(rc));
    return;
  }
  for (size_t i = 0; i < n; i++) {
    attempt_result r = {.ack = res[i] == STORE_CLAIM_SPENT};
    if (res[i] == STORE_CLAIMED) { /* also when stopping: claimed, so sent */
      rc = attempt_claimed(&q->ac, &jobs[i], &at[i], &r);
      if (rc != ERR_OK)
        log_warn("attempt not recorded; retried later", "delivery", jobs[i].id,
                 "error", err_str(rc));
    }
    store_attempt_clear(&at[i]);
    finish(q, &jobs[i], ids[i], &r);
  }
}

/* Jobs of dead consumers, idle for claim_timeout_ms, become ours. */
static void autoclaim(worker *w) {
  queue *q = w->q;
  char idle[24];
  snprintf(idle, sizeof idle, "%" PRId64, q->c.claim_timeout_ms);
  const char *argv[] = {"XAUTOCLAIM", STREAM, GROUP,   w->consumer,
                        idle,         "0-0",  "COUNT", AUTOCLAIM_COUNT};
  cache_reply *r = NULL;
  if (cache_command(q->c.redis, false, 8, argv, NULL, &r) == ERR_OK)
    run_entries(q, cache_reply_at(r, 1));
  cache_reply_free(r);
}

static void read_new(worker *w) {
  queue *q = w->q;
  const char *argv[] = {"XREADGROUP", "GROUP",      GROUP,   w->consumer,
                        "COUNT",      READ_COUNT_S, "BLOCK", READ_BLOCK_MS,
                        "STREAMS",    STREAM,       ">"};
  cache_reply *r = NULL;
  int rc = cache_command(q->c.redis, false, 11, argv, NULL, &r);
  if (rc == ERR_DB && strstr(cache_last_error()->message, "NOGROUP") != NULL)
    rc = create_group(q->c.redis); /* Redis lost it: the sweep refills */
  if (rc == ERR_OK && cache_reply_type(r) == CACHE_REPLY_ARRAY)
    run_entries(q, cache_reply_at(cache_reply_at(r, 0), 1));
  else if (rc != ERR_OK)
    time_sleep_ms(200); /* Redis down: do not spin */
  cache_reply_free(r);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  while (!atomic_load(&w->q->stop)) {
    int64_t now = time_mono_ms();
    if (now >= w->next_autoclaim_ms) {
      w->next_autoclaim_ms = now + w->q->c.claim_timeout_ms / 2 + 1;
      autoclaim(w);
    }
    read_new(w);
  }
  return NULL;
}

/* ------------------------------------------------- mover and sweep --- */

static void gauge(queue *q, const char *cmd, const char *key,
                  metrics_child *m) {
  const char *argv[] = {cmd, key};
  cache_reply *r = NULL;
  int64_t n = 0;
  if (cache_command(q->c.redis, true, 2, argv, NULL, &r) == ERR_OK &&
      cache_reply_int(r, &n) == ERR_OK)
    metrics_set(m, (double)n);
  cache_reply_free(r);
}

static void sweep(queue *q) {
  store_job *jobs = NULL;
  size_t n = 0;
  int rc = store_due(q->c.store, q->c.sweep_grace_ms, SWEEP_BATCH, &jobs, &n);
  if (rc == ERR_OK && n > 0) {
    char count[24];
    snprintf(count, sizeof count, "%zu", n);
    log_info("sweep: queueing overdue deliveries again", "count", count);
    (void)queue_push(q, jobs, n);
  }
  free(jobs);
  int64_t pending = 0;
  if (store_pending_count(q->c.store, &pending) == ERR_OK)
    metrics_set(q->pending, (double)pending);
}

static void mover_round(void *arg) {
  queue *q = arg;
  char now[24];
  snprintf(now, sizeof now, "%" PRId64, time_now_ms());
  const char *keys[] = {DELAYED, STREAM}, *args[] = {now};
  cache_reply *r = NULL;
  if (cache_eval(q->c.redis, q->move, 2, keys, 1, args, &r) != ERR_OK)
    log_debug("delayed jobs not moved", "error", cache_last_error()->message);
  cache_reply_free(r);
  gauge(q, "XLEN", STREAM, q->ready_depth);
  gauge(q, "ZCARD", DELAYED, q->delayed_depth);
  if (time_mono_ms() >= q->next_sweep_ms) {
    q->next_sweep_ms = time_mono_ms() + q->c.sweep_interval_ms;
    sweep(q);
  }
}

/* ------------------------------------------------------------ set-up --- */

static void metrics_init(queue *q) {
  static const char *const kQueue[] = {"queue"};
  metrics_family *d =
      metrics_gauge("notifications_queue_depth",
                    "jobs in the stream and the delayed set", 1, kQueue);
  q->ready_depth = metrics_child_get(d, (const char *const[]){"ready"});
  q->delayed_depth = metrics_child_get(d, (const char *const[]){"delayed"});
  q->pending = metrics_child_get(
      metrics_gauge("notifications_pending_deliveries",
                    "deliveries not yet succeeded or dead", 0, NULL),
      NULL);
  attempt_metrics_init();
}

static bool config_ok(const queue_config *c) {
  return c->redis != NULL && c->store != NULL && c->key != NULL &&
         c->workers >= 1 && c->workers <= 64 && c->max_attempts >= 1 &&
         c->base_delay_ms >= 0 && c->claim_timeout_ms > 0 && c->poll_ms > 0 &&
         c->sweep_interval_ms > 0 && c->sweep_grace_ms >= 0;
}

static int start_workers(queue *q) {
  char host[64] = "host";
  (void)gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  uint32_t tag = randombytes_random();
  for (int i = 0; i < q->c.workers; i++) {
    worker *w = &q->workers[i];
    w->q = q;
    snprintf(w->consumer, sizeof w->consumer, "%s-%d-%08" PRIx32 "-%d", host,
             (int)getpid(), tag, i);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
      return ERR_INTERNAL;
    q->nstarted++;
  }
  return ERR_OK;
}

int queue_start(const queue_config *c, queue **out) {
  *out = NULL;
  if (c == NULL || !config_ok(c)) return ERR_INVAL;
  queue *q = calloc(1, sizeof *q);
  if (q == NULL) return ERR_NOMEM;
  q->c = *c;
  q->ac =
      (attempt_config){.store = c->store,
                       .key = c->key,
                       .send = &q->c.send,
                       .mail = c->mail,
                       .sms = c->sms,
                       .max_attempts = c->max_attempts,
                       .base_delay_ms = c->base_delay_ms,
                       .lease_ms = c->send.timeout_ms + c->claim_timeout_ms};
  metrics_init(q);
  q->workers = calloc((size_t)c->workers, sizeof *q->workers);
  int rc = q->workers == NULL ? ERR_NOMEM : ERR_OK;
  if (rc == ERR_OK) rc = cache_script_new(kMoveScript, &q->move);
  if (rc == ERR_OK) rc = cache_script_new(kAckScript, &q->ack);
  if (rc == ERR_OK) rc = cache_script_new(kPushScript, &q->push);
  if (rc == ERR_OK) rc = create_group(c->redis);
  if (rc == ERR_OK) rc = start_workers(q);
  periodic_options po = {.name = "notif-mover",
                         .interval_ms = c->poll_ms,
                         .fn = mover_round,
                         .arg = q};
  if (rc == ERR_OK) rc = periodic_start(&po, &q->mover);
  if (rc != ERR_OK) {
    queue_free(q);
    return rc;
  }
  *out = q;
  return ERR_OK;
}

void queue_free(queue *q) {
  if (q == NULL) return;
  atomic_store(&q->stop, true);
  periodic_stop(q->mover);
  for (int i = 0; i < q->nstarted; i++)
    pthread_join(q->workers[i].thread, NULL);
  free(q->workers);
  cache_script_free(q->move);
  cache_script_free(q->ack);
  cache_script_free(q->push);
  free(q);
}
