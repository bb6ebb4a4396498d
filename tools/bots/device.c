/*
 * device.c - see device.h. Bodies are built with jansson; client_time is
 * the machine's clock (RFC 3339 UTC, milliseconds), which under the
 * default server_wins policy is only recorded.
 */
#include "tools/bots/device.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint32_t rnd(uint32_t n) { return n ? randombytes_uniform(n) : 0; }

int device_pick(const bot_tenant *t) {
  if (t->ndevices == 0) return -1;
  int start = (int)rnd((uint32_t)t->ndevices);
  for (int k = 0; k < t->ndevices; k++) {
    const bot_device *d = &t->devices[(start + k) % t->ndevices];
    if (!d->busy && !d->uncertain) return (start + k) % t->ndevices;
  }
  return -1;
}

static void now_rfc3339(char *out, size_t cap) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, cap - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

/* A free order of device di still movable; -1 if none. */
static long own_order(const bot_tenant *t, int di) {
  if (t->norders == 0) return -1;
  size_t start = rnd((uint32_t)t->norders);
  for (size_t k = 0; k < t->norders; k++) {
    size_t i = (start + k) % t->norders;
    const bot_order *o = &t->orders[i];
    if (o->device == di + 1 && !o->busy && !o->uncertain &&
        o->status < ST_DELIVERED)
      return (long)i;
  }
  return -1;
}

static json_t *create_args(const bot_tenant *t, const char *oid) {
  json_t *items = json_array();
  int lines = 1 + (int)rnd(3), first = (int)rnd((uint32_t)t->nproducts);
  for (int i = 0; i < lines && i < t->nproducts; i++)
    json_array_append_new(items,
                          json_pack("{sssi}", "product_id",
                                    t->products[(first + i) % t->nproducts],
                                    "quantity", 1 + (int)rnd(3)));
  /* The notes mark the order as a device's (a test counts them). */
  return json_pack("{ssso ss}", "order_id", oid, "items", items, "notes",
                   "bots device");
}

char *device_push_body(bot_tenant *t, device_push *p) {
  bot_device *d = &t->devices[p->device];
  p->mid = d->next_mid;
  p->order = rnd(4) == 0 ? own_order(t, p->device) : -1;
  json_t *args;
  const char *name;
  if (p->order >= 0) {
    bot_order *o = &t->orders[p->order];
    o->busy = true;
    p->target = o->status + 1;
    name = "updateOrderStatus";
    args = json_pack("{sssssI}", "order_id", o->id, "status",
                     kStatusNames[p->target], "base_version",
                     (json_int_t)o->version);
  } else {
    uuid_v7_str(p->oid);
    name = "createOrder";
    args = create_args(t, p->oid);
  }
  char when[40];
  now_rfc3339(when, sizeof when);
  json_t *b =
      json_pack("{s[{sIsssoss}]}", "mutations", "id", (json_int_t)p->mid,
                "name", name, "args", args, "client_time", when);
  char *s = b ? json_dumps(b, JSON_COMPACT) : NULL;
  json_decref(b);
  return s;
}

/* The result for mutation mid in a push answer, or NULL. */
static json_t *result_of(json_t *a, long long mid) {
  json_t *res = json_object_get(a, "results"), *e;
  size_t i;
  json_array_foreach(res, i, e) {
    json_t *id = json_object_get(e, "id");
    long long v = json_is_string(id) ? strtoll(json_string_value(id), NULL, 10)
                                     : (long long)json_integer_value(id);
    if (v == mid) return e;
  }
  return NULL;
}

bool device_push_apply(bot_tenant *t, const device_push *p, const xfer *x,
                       long *changes) {
  bot_device *d = &t->devices[p->device];
  bot_order *o = p->order >= 0 ? &t->orders[p->order] : NULL;
  if (o != NULL) o->busy = false;
  d->busy = false;
  if (x->rc != CURLE_OK) { /* no answer: applied or not, nobody knows */
    d->uncertain = true;
    if (o != NULL) o->uncertain = true;
    return false;
  }
  json_t *a = xfer_ok(x) ? xfer_json(x) : NULL;
  json_t *e = a ? result_of(a, p->mid) : NULL;
  const char *st = e ? xfer_str(e, "status") : NULL;
  bool applied = st != NULL && strcmp(st, "applied") == 0;
  if (e != NULL) d->next_mid = p->mid + 1; /* recorded, whatever it was */
  if (applied) {
    (*changes)++;
    if (o != NULL) {
      o->status = p->target;
      o->version++;
    } else {
      bot_order *n = world_add_order(t);
      if (n != NULL) {
        snprintf(n->id, sizeof n->id, "%s", p->oid);
        n->status = ST_PENDING;
        n->device = p->device + 1;
        n->version = 1;
      }
      d->orders++;
    }
  }
  json_decref(a);
  return applied;
}

void device_pull_path(const bot_device *d, char *path, size_t cap) {
  snprintf(path, cap, "/v1/sync/pull?cursor=%lld&limit=100", d->cursor);
}

bool device_pull_apply(bot_device *d, const xfer *x) {
  d->busy = false;
  json_t *a = xfer_ok(x) ? xfer_json(x) : NULL;
  json_t *c = a ? json_object_get(a, "cursor") : NULL;
  bool ok = c != NULL && (json_is_string(c) || json_is_integer(c));
  if (ok)
    d->cursor = json_is_string(c) ? strtoll(json_string_value(c), NULL, 10)
                                  : (long long)json_integer_value(c);
  json_decref(a);
  return ok;
}

char *device_beat_body(void) {
  json_t *b = json_pack("{sssi}", "app_version", "bots", "pending", 0);
  char *s = b ? json_dumps(b, JSON_COMPACT) : NULL;
  json_decref(b);
  return s;
}
