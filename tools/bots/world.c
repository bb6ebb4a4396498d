/*
 * world.c - see world.h. Set-up is sequential and strict: it runs before
 * the clock starts, and a load run on a half-made world would measure
 * the wrong thing, so the first unexpected answer stops it (named on
 * stderr with its status and error code, never with a token).
 */
#include "tools/bots/world.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/multi/xfer.h"

const char *const kStatusNames[ST_COUNT] = {
    "pending", "confirmed", "preparing", "ready", "delivered", "cancelled"};

/* One set-up request; *out gets the parsed answer on `want`. */
static int call(bots_world *w, const char *method, const char *path,
                const char *token, const char *tenant, json_t *body, long want,
                json_t **out) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  xfer x;
  xfer_req q = {.method = method,
                .base = w->base,
                .path = path,
                .token = token,
                .tenant = tenant,
                .body = text,
                .timeout_ms = w->timeout_ms};
  int rc = xfer_init(&x, &q);
  if (text) {
    explicit_bzero(text, strlen(text));
    free(text);
  }
  if (rc != 0) return -1;
  xfer_perform(&x);
  stats_add(&w->setup, x.status, x.status == want, xfer_ms(&x));
  if (x.status != want) {
    char d[200];
    fprintf(stderr, "bots: set-up %s %s: %s\n", method, path,
            xfer_describe(&x, d, sizeof d));
    xfer_free(&x);
    return -1;
  }
  if (out != NULL) *out = xfer_json(&x);
  xfer_free(&x);
  return out == NULL || *out != NULL ? 0 : -1;
}

static void copy(char *dst, size_t cap, const json_t *o, const char *k) {
  const char *v = xfer_str(o, k);
  snprintf(dst, cap, "%s", v ? v : "");
}

static int login(bots_world *w, bot_tenant *t, bot_user *u) {
  json_t *a = NULL;
  if (call(w, "POST", "/v1/auth/login", NULL, t->slug,
           json_pack("{ssss}", "email", u->email, "password", w->password), 200,
           &a) != 0)
    return -1;
  copy(u->token, sizeof u->token, a, "access_token");
  copy(u->id, sizeof u->id, json_object_get(a, "user"), "id");
  json_decref(a);
  return 0;
}

static int make_tenant(bots_world *w, bot_tenant *t, int i) {
  uint32_t r = randombytes_random();
  snprintf(t->slug, sizeof t->slug, "bots-%08x-%d", r, i);
  snprintf(t->owner.email, sizeof t->owner.email, "owner@%s.example.test",
           t->slug);
  json_t *a = NULL;
  if (call(w, "POST", "/v1/tenants", NULL, NULL,
           json_pack("{ssss s{ssssss}}", "name", t->slug, "slug", t->slug,
                     "owner", "email", t->owner.email, "password", w->password,
                     "name", "Bot Owner"),
           201, &a) != 0)
    return -1;
  copy(t->id, sizeof t->id, json_object_get(a, "tenant"), "id");
  copy(t->owner.token, sizeof t->owner.token, a, "access_token");
  json_decref(a);
  return 0;
}

static int make_staff(bots_world *w, bot_tenant *t) {
  snprintf(t->staff.email, sizeof t->staff.email, "staff@%s.example.test",
           t->slug);
  if (call(w, "POST", "/v1/tenant/members", t->owner.token, NULL,
           json_pack("{ssssssss}", "email", t->staff.email, "name", "Bot Staff",
                     "password", w->password, "role", "staff"),
           201, NULL) != 0)
    return -1;
  return login(w, t, &t->staff);
}

static int make_customer(bots_world *w, bot_tenant *t, int k) {
  bot_user *u = &t->customers[k];
  snprintf(u->email, sizeof u->email, "customer%d@%s.example.test", k, t->slug);
  if (call(w, "POST", "/v1/auth/register", NULL, t->slug,
           json_pack("{ssssss}", "email", u->email, "name", "Bot Customer",
                     "password", w->password),
           201, NULL) != 0)
    return -1;
  return login(w, t, u);
}

static int make_product(bots_world *w, bot_tenant *t, int k) {
  char name[32];
  snprintf(name, sizeof name, "Dish %d", k);
  json_t *a = NULL;
  if (call(w, "POST", "/v1/products", t->owner.token, NULL,
           json_pack("{sssisI}", "name", name, "price_cents", 350 + 50 * k,
                     "stock", (json_int_t)w->stock),
           201, &a) != 0)
    return -1;
  copy(t->products[k], sizeof t->products[k], a, "id");
  json_decref(a);
  return 0;
}

/* A device registered by the staff member, then its session: the secret
 * is exchanged at once and never kept. */
static int make_device(bots_world *w, bot_tenant *t, int k) {
  bot_device *d = &t->devices[k];
  char name[32], path[96];
  snprintf(name, sizeof name, "Bot till %d", k);
  json_t *a = NULL;
  if (call(w, "POST", "/v1/sync/devices", t->staff.token, NULL,
           json_pack("{ssss}", "name", name, "platform", "bots"), 201, &a) != 0)
    return -1;
  copy(d->id, sizeof d->id, json_object_get(a, "device"), "id");
  const char *sec = xfer_str(a, "device_secret");
  json_t *body = json_pack("{ss}", "device_secret", sec ? sec : "");
  json_decref(a);
  snprintf(path, sizeof path, "/v1/sync/devices/%s/session", d->id);
  if (call(w, "POST", path, NULL, t->slug, body, 200, &a) != 0) return -1;
  copy(d->token, sizeof d->token, a, "access_token");
  json_decref(a);
  d->next_mid = 1;
  return 0;
}

int world_setup(bots_world *w) {
  if (sodium_init() < 0) return -1;
  uint8_t raw[16];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2hex(w->password, sizeof w->password, raw, sizeof raw);
  w->setup.name = "setup";
  w->tenants = calloc((size_t)w->ntenants, sizeof *w->tenants);
  if (w->tenants == NULL) return -1;
  for (int i = 0; i < w->ntenants; i++) {
    bot_tenant *t = &w->tenants[i];
    if (make_tenant(w, t, i) != 0 || make_staff(w, t) != 0) return -1;
    for (int k = 0; k < w->customers; k++)
      if (make_customer(w, t, k) != 0) return -1;
    t->ncustomers = w->customers;
    for (int k = 0; k < w->products; k++)
      if (make_product(w, t, k) != 0) return -1;
    t->nproducts = w->products;
    for (int k = 0; k < w->devices; k++)
      if (make_device(w, t, k) != 0) return -1;
    t->ndevices = w->devices;
  }
  return 0;
}

bot_order *world_add_order(bot_tenant *t) {
  if (t->norders == t->cap) {
    if (t->cap >= BOTS_MAX_ORDERS_PER_TENANT) return NULL;
    size_t nc = t->cap ? t->cap * 2 : 64;
    bot_order *n = realloc(t->orders, nc * sizeof *n);
    if (n == NULL) return NULL;
    t->orders = n;
    t->cap = nc;
  }
  bot_order *o = &t->orders[t->norders++];
  memset(o, 0, sizeof *o);
  return o;
}

void world_free(bots_world *w) {
  for (int i = 0; w->tenants && i < w->ntenants; i++)
    free(w->tenants[i].orders);
  if (w->tenants)
    sodium_memzero(w->tenants, (size_t)w->ntenants * sizeof *w->tenants);
  free(w->tenants);
  w->tenants = NULL;
  sodium_memzero(w->password, sizeof w->password);
  stats_free(&w->setup);
}
