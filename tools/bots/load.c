/*
 * load.c - see load.h. A job is one request in flight; it names its
 * order by index (the order arrays grow by realloc while jobs run) and
 * marks it busy, so no two requests race on one order and every refusal
 * counted is the server's own, not the bots'.
 */
#include "tools/bots/load.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "tools/bots/device.h"
#include "tools/multi/xfer.h"

static const int kWeights[OP_COUNT] = {35, 30, 4, 7, 12, 12, 10, 5, 0};
static const char *const kOpNames[OP_COUNT] = {
    "create_order", "advance_order", "cancel_order",
    "get_order",    "list_orders",   "list_products",
    "push",         "pull",          "heartbeat"};

typedef struct job {
  xfer x;
  load_op op;
  int tenant, customer, target;
  long order;       /* index in the tenant's orders, -1 for none */
  device_push push; /* OP_PUSH, OP_PULL, OP_HEARTBEAT: push.device */
} job;

typedef struct loadrun {
  bots_world *w;
  const load_cfg *c;
  load_result *r;
  CURLM *multi;
  int inflight;
} loadrun;

static uint32_t rnd(uint32_t n) { return n ? randombytes_uniform(n) : 0; }

/* Push and pull are in the mix only when there are devices. */
static load_op pick_op(bool devices) {
  int total = 0;
  for (int i = 0; i < OP_COUNT; i++)
    if (devices || (i != OP_PUSH && i != OP_PULL)) total += kWeights[i];
  int v = (int)rnd((uint32_t)total), i = 0;
  while (v >= kWeights[i]) v -= kWeights[i++];
  return (load_op)i;
}

/* A random free customer's order of t whose status passes want(); -1 if
 * none (devices' orders are their devices' to change). */
static long pick_order(bot_tenant *t, bool (*want)(int status)) {
  if (t->norders == 0) return -1;
  size_t start = rnd((uint32_t)t->norders);
  for (size_t k = 0; k < t->norders; k++) {
    size_t i = (start + k) % t->norders;
    bot_order *o = &t->orders[i];
    if (!o->busy && !o->uncertain && o->device == 0 && want(o->status))
      return (long)i;
  }
  return -1;
}

static bool movable(int s) { return s < ST_DELIVERED; }
static bool cancellable(int s) { return s == ST_PENDING; }
static bool any(int s) { return true; }

static char *order_body(const bot_tenant *t) {
  json_t *items = json_array();
  int lines = 1 + (int)rnd(3), first = (int)rnd((uint32_t)t->nproducts);
  for (int i = 0; i < lines && i < t->nproducts; i++)
    json_array_append_new(items,
                          json_pack("{sssi}", "product_id",
                                    t->products[(first + i) % t->nproducts],
                                    "quantity", 1 + (int)rnd(3)));
  json_t *b = json_pack("{so}", "items", items);
  char *s = json_dumps(b, JSON_COMPACT);
  json_decref(b);
  return s;
}

static char *status_body(int status) {
  json_t *b = json_pack("{ss}", "status", kStatusNames[status]);
  char *s = json_dumps(b, JSON_COMPACT);
  json_decref(b);
  return s;
}

/* Chooses what j does and fills its request. Returns 0 or -1. */
static int plan(loadrun *lr, job *j, xfer_req *q, char *path, size_t cap,
                char **body, char *key) {
  bot_tenant *t = &lr->w->tenants[j->tenant];
  j->op = pick_op(t->ndevices > 0);
  j->order = -1;
  if (j->op == OP_PUSH || j->op == OP_PULL) {
    j->push.device = device_pick(t);
    if (j->push.device < 0) j->op = OP_CREATE_ORDER;
  }
  j->customer = (int)rnd((uint32_t)t->ncustomers);
  if (j->op == OP_ADVANCE_ORDER) j->order = pick_order(t, movable);
  if (j->op == OP_CANCEL_ORDER) j->order = pick_order(t, cancellable);
  if (j->op == OP_GET_ORDER) j->order = pick_order(t, any);
  bool needs = j->op == OP_ADVANCE_ORDER || j->op == OP_CANCEL_ORDER ||
               j->op == OP_GET_ORDER;
  if (needs && j->order < 0) j->op = OP_CREATE_ORDER;
  bot_order *o = j->order >= 0 ? &t->orders[j->order] : NULL;
  if (o != NULL) o->busy = true;
  q->method = "GET";
  switch (j->op) {
  case OP_CREATE_ORDER:
    q->method = "POST";
    q->token = t->customers[j->customer].token;
    snprintf(path, cap, "/v1/orders");
    uuid_v7_str(key);
    q->idem_key = key;
    return (*body = order_body(t)) ? 0 : -1;
  case OP_ADVANCE_ORDER:
    q->method = "POST";
    q->token = t->staff.token;
    j->target = o->status + 1;
    snprintf(path, cap, "/v1/orders/%s/status", o->id);
    return (*body = status_body(j->target)) ? 0 : -1;
  case OP_CANCEL_ORDER:
    q->method = "POST";
    q->token = t->customers[o->customer].token;
    snprintf(path, cap, "/v1/orders/%s/cancel", o->id);
    return 0;
  case OP_GET_ORDER:
    q->token = t->customers[o->customer].token;
    snprintf(path, cap, "/v1/orders/%s", o->id);
    return 0;
  case OP_PUSH:
    q->method = "POST";
    q->token = t->devices[j->push.device].token;
    t->devices[j->push.device].busy = true;
    snprintf(path, cap, "/v1/sync/push");
    return (*body = device_push_body(t, &j->push)) ? 0 : -1;
  case OP_PULL:
    q->token = t->devices[j->push.device].token;
    t->devices[j->push.device].busy = true;
    device_pull_path(&t->devices[j->push.device], path, cap);
    return 0;
  case OP_LIST_ORDERS:
    q->token = t->staff.token;
    snprintf(path, cap, "/v1/orders?limit=20");
    return 0;
  default:
    q->token = t->customers[j->customer].token;
    snprintf(path, cap, "/v1/products?limit=100"); /* <= 50: one page */
    return 0;
  }
}

/* A heartbeat of device di of tenant ti. */
static int plan_beat(loadrun *lr, job *j, xfer_req *q, char *path, size_t cap,
                     char **body) {
  bot_device *d = &lr->w->tenants[j->tenant].devices[j->push.device];
  d->beating = true;
  j->op = OP_HEARTBEAT;
  j->order = -1;
  q->method = "POST";
  q->token = d->token;
  snprintf(path, cap, "/v1/sync/heartbeat");
  return (*body = device_beat_body()) ? 0 : -1;
}

/* Starts a job: a heartbeat of device `beat` of tenant `tenant`, or
 * (beat < 0) an operation of the mix for a random tenant. */
static int start_job(loadrun *lr, int tenant, int beat) {
  job *j = calloc(1, sizeof *j);
  if (j == NULL) return -1;
  j->tenant = beat >= 0 ? tenant : (int)rnd((uint32_t)lr->w->ntenants);
  j->push.device = beat;
  char path[128], key[UUID_STR_LEN + 1];
  char *body = NULL;
  xfer_req q = {.base = lr->w->base, .timeout_ms = lr->w->timeout_ms};
  int rc = beat >= 0 ? plan_beat(lr, j, &q, path, sizeof path, &body)
                     : plan(lr, j, &q, path, sizeof path, &body, key);
  q.path = path;
  q.body = body;
  if (rc == 0) rc = xfer_init(&j->x, &q);
  free(body);
  if (rc != 0) {
    free(j);
    return -1;
  }
  j->x.user = j;
  lr->inflight++;
  return curl_multi_add_handle(lr->multi, j->x.easy) == CURLM_OK ? 0 : -1;
}

/* A device's answer into the model; whether the operation succeeded. */
static bool apply_device(loadrun *lr, job *j) {
  bot_tenant *t = &lr->w->tenants[j->tenant];
  bot_device *d = &t->devices[j->push.device];
  if (j->op == OP_HEARTBEAT) {
    d->beating = false;
    return xfer_ok(&j->x);
  }
  if (j->op == OP_PULL) return device_pull_apply(d, &j->x);
  if (j->x.rc != CURLE_OK) lr->r->uncertain++;
  return device_push_apply(t, &j->push, &j->x, &lr->r->device_changes);
}

/* Brings the model up to date with j's answer; whether it succeeded. */
static bool apply(loadrun *lr, job *j) {
  if (j->op == OP_PUSH || j->op == OP_PULL || j->op == OP_HEARTBEAT)
    return apply_device(lr, j);
  bot_tenant *t = &lr->w->tenants[j->tenant];
  bot_order *o = j->order >= 0 ? &t->orders[j->order] : NULL;
  bool ok = xfer_ok(&j->x), answered = j->x.rc == CURLE_OK;
  if (j->op == OP_CREATE_ORDER && ok) {
    json_t *a = xfer_json(&j->x);
    const char *id = a ? xfer_str(a, "id") : NULL;
    bot_order *n = id ? world_add_order(t) : NULL;
    if (n != NULL) {
      snprintf(n->id, sizeof n->id, "%s", id);
      n->status = ST_PENDING;
      n->customer = j->customer;
    }
    json_decref(a);
  } else if (j->op == OP_CREATE_ORDER && !answered) {
    lr->r->uncertain++;
  }
  if (o == NULL) return ok;
  o->busy = false;
  if (j->op == OP_ADVANCE_ORDER && ok) o->status = j->target;
  if (j->op == OP_CANCEL_ORDER && ok) o->status = ST_CANCELLED;
  if ((j->op == OP_ADVANCE_ORDER || j->op == OP_CANCEL_ORDER) && !answered) {
    o->uncertain = true;
    lr->r->uncertain++;
  }
  return ok;
}

static void reap(loadrun *lr) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(lr->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    job *j = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
    curl_multi_remove_handle(lr->multi, m->easy_handle);
    xfer_done(&j->x, m->data.result);
    bool ok = apply(lr, j);
    stats_add(&lr->r->ops[j->op], j->x.status, ok, xfer_ms(&j->x));
    xfer_free(&j->x);
    free(j);
    lr->inflight--;
  }
}

/* Exponential gap with mean 1/rate, in ns. */
static int64_t gap_ns(double rate) {
  double u = (randombytes_uniform(1000000) + 1) / 1000001.0;
  return (int64_t)(-log(u) / rate * 1e9);
}

/* Starts the heartbeats that are due (room permitting). */
static int beat(loadrun *lr, int64_t now) {
  for (int i = 0; i < lr->w->ntenants; i++)
    for (int k = 0; k < lr->w->tenants[i].ndevices; k++) {
      bot_device *d = &lr->w->tenants[i].devices[k];
      if (d->beating || now < d->next_beat_ns ||
          lr->inflight >= lr->c->concurrency)
        continue;
      d->next_beat_ns = now + (int64_t)(lr->c->beat_s * 1e9);
      if (start_job(lr, i, k) != 0) return -1;
    }
  return 0;
}

/* Each device's first beat at a random point of the first interval. */
static void first_beats(loadrun *lr, int64_t t0) {
  uint32_t spread = (uint32_t)(lr->c->beat_s * 1000);
  for (int i = 0; i < lr->w->ntenants; i++)
    for (int k = 0; k < lr->w->tenants[i].ndevices; k++)
      lr->w->tenants[i].devices[k].next_beat_ns =
          t0 + (int64_t)rnd(spread) * 1000000;
}

static int drive(loadrun *lr) {
  int64_t t0 = time_mono_ns();
  int64_t end = t0 + (int64_t)(lr->c->duration_s * 1e9), due = t0;
  first_beats(lr, t0);
  for (;;) {
    int64_t now = time_mono_ns();
    bool starting = now < end;
    if (starting && beat(lr, now) != 0) return -1;
    while (starting && due <= now && lr->inflight < lr->c->concurrency) {
      if (now - due > 5000000) { /* late: do not burst to catch up */
        lr->r->late++;
        due = now;
      }
      if (start_job(lr, 0, -1) != 0) return -1;
      due += gap_ns(lr->c->rate);
    }
    if (!starting && lr->inflight == 0) break;
    int running;
    curl_multi_perform(lr->multi, &running);
    reap(lr);
    int64_t wait = starting ? (due - time_mono_ns()) / 1000000 : 100;
    curl_multi_poll(lr->multi, NULL, 0,
                    wait < 1     ? 1
                    : wait > 100 ? 100
                                 : (int)wait,
                    NULL);
  }
  lr->r->elapsed_s = (double)(time_mono_ns() - t0) / 1e9;
  return 0;
}

int load_run(bots_world *w, const load_cfg *c, load_result *r) {
  memset(r, 0, sizeof *r);
  for (int i = 0; i < OP_COUNT; i++) r->ops[i].name = kOpNames[i];
  loadrun lr = {.w = w, .c = c, .r = r, .multi = curl_multi_init()};
  if (lr.multi == NULL || sodium_init() < 0) return -1;
  int rc = drive(&lr);
  curl_multi_cleanup(lr.multi);
  return rc;
}

void load_result_free(load_result *r) {
  for (int i = 0; i < OP_COUNT; i++) stats_free(&r->ops[i]);
}
