/*
 * bots.c - the load bots' command line (README.md): parse and bound the
 * arguments, make the tenants (world.c), run the load (load.c), print
 * the report as a table or JSON (devices: their own operations push, pull
 * and heartbeat, and the orders and mutations they made).
 *
 * Exit codes: 0 the run had no failed request (and, with --realtime,
 * every event was delivered); 1 some requests failed or events went
 * missing (the report says which, by status); 2 usage error; 3 set-up failed
 * (stderr names the step); 4 a local failure (memory, libcurl).
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "tools/bots/listen.h"
#include "tools/bots/load.h"
#include "tools/bots/world.h"

#define MAX_DURATION_S 600 /* below the default 15 min access-token life */

typedef struct args {
  bool json;
  const char *realtime; /* ws://host:port, or NULL: no listeners */
  load_cfg load;
} args;

/* What the realtime listeners saw (when --realtime). */
typedef struct rt_result {
  bool on;
  long listeners, expected, delivered, others, dropped;
} rt_result;

static int fail_usage(const char *msg) {
  fprintf(stderr,
          "bots: %s\n"
          "usage: bots [--server URL] [--tenants N] [--duration 60s|2m]\n"
          "            [--rate OPS_PER_S] [--concurrency N] [--customers N]\n"
          "            [--products N] [--stock N] [--timeout MS]\n"
          "            [--devices N] [--heartbeat SECONDS]\n"
          "            [--realtime ws://HOST:PORT] [--json]\n",
          msg);
  return 2;
}

static long bounded(const char *s, long lo, long hi) {
  char *end;
  long v = strtol(s, &end, 10);
  return (*s && !*end && v >= lo && v <= hi) ? v : -1;
}

/* "60", "60s" or "2m" → seconds; -1 when malformed or out of range. */
static double parse_duration(const char *s) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v <= 0) return -1;
  if (strcmp(end, "m") == 0)
    v *= 60;
  else if (*end != '\0' && strcmp(end, "s") != 0)
    return -1;
  return v <= MAX_DURATION_S ? v : -1;
}

static int parse(args *a, bots_world *w, int argc, char **argv) {
  static const struct option opts[] = {
      {"server", required_argument, 0, 's'},
      {"tenants", required_argument, 0, 'n'},
      {"duration", required_argument, 0, 'd'},
      {"rate", required_argument, 0, 'r'},
      {"concurrency", required_argument, 0, 'c'},
      {"customers", required_argument, 0, 'u'},
      {"products", required_argument, 0, 'p'},
      {"stock", required_argument, 0, 'k'},
      {"timeout", required_argument, 0, 'T'},
      {"realtime", required_argument, 0, 'R'},
      {"devices", required_argument, 0, 'D'},
      {"heartbeat", required_argument, 0, 'H'},
      {"json", no_argument, 0, 'j'},
      {0, 0, 0, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    long v = 0;
    switch (o) {
    case 's':
      if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8))
        return fail_usage("--server: http(s)://host[:port]");
      w->base = optarg;
      break;
    case 'n':
      if ((w->ntenants = (int)bounded(optarg, 1, BOTS_MAX_TENANTS)) < 0)
        return fail_usage("--tenants: 1..100");
      break;
    case 'd':
      if ((a->load.duration_s = parse_duration(optarg)) < 0)
        return fail_usage("--duration: up to 600s (10m)");
      break;
    case 'r':
      if ((v = bounded(optarg, 1, 10000)) < 0)
        return fail_usage("--rate: 1..10000 operations per second");
      a->load.rate = (double)v;
      break;
    case 'c':
      if ((a->load.concurrency = (int)bounded(optarg, 1, 256)) < 0)
        return fail_usage("--concurrency: 1..256");
      break;
    case 'u':
      if ((w->customers = (int)bounded(optarg, 1, BOTS_MAX_CUSTOMERS)) < 0)
        return fail_usage("--customers: 1..20");
      break;
    case 'p':
      if ((w->products = (int)bounded(optarg, 1, BOTS_MAX_PRODUCTS)) < 0)
        return fail_usage("--products: 1..50");
      break;
    case 'k':
      if ((w->stock = bounded(optarg, 1, 1000000000)) < 0)
        return fail_usage("--stock: 1..1000000000");
      break;
    case 'T':
      if ((w->timeout_ms = bounded(optarg, 100, 120000)) < 0)
        return fail_usage("--timeout: 100..120000 ms");
      break;
    case 'R':
      if (strncmp(optarg, "ws://", 5) != 0 || strlen(optarg) > 200)
        return fail_usage("--realtime: ws://host:port");
      a->realtime = optarg;
      break;
    case 'D':
      if ((w->devices = (int)bounded(optarg, 0, BOTS_MAX_DEVICES)) < 0)
        return fail_usage("--devices: 0..20");
      break;
    case 'H':
      if ((v = bounded(optarg, 1, 3600)) < 0)
        return fail_usage("--heartbeat: 1..3600 seconds");
      a->load.beat_s = (double)v;
      break;
    case 'j':
      a->json = true;
      break;
    default:
      return fail_usage("unknown option");
    }
  }
  return optind == argc ? 0 : fail_usage("unexpected argument");
}

/* Orders by the status the bots last saw. */
static void order_counts(const bots_world *w, long counts[ST_COUNT],
                         long *total) {
  memset(counts, 0, ST_COUNT * sizeof *counts);
  *total = 0;
  for (int i = 0; i < w->ntenants; i++)
    for (size_t k = 0; k < w->tenants[i].norders; k++) {
      counts[w->tenants[i].orders[k].status]++;
      (*total)++;
    }
}

/* Orders the devices placed and the mutations they sent (answered). */
static void device_counts(const bots_world *w, long *orders, long *mutations) {
  *orders = *mutations = 0;
  for (int i = 0; i < w->ntenants; i++)
    for (int k = 0; k < w->tenants[i].ndevices; k++) {
      *orders += w->tenants[i].devices[k].orders;
      *mutations += (long)(w->tenants[i].devices[k].next_mid - 1);
    }
}

/* {"count","orders","mutations","list":[{"tenant","id","orders",
 * "mutations","uncertain"}]} */
static json_t *devices_json(const bots_world *w) {
  long orders, mutations;
  device_counts(w, &orders, &mutations);
  json_t *list = json_array();
  for (int i = 0; i < w->ntenants; i++)
    for (int k = 0; k < w->tenants[i].ndevices; k++) {
      const bot_device *d = &w->tenants[i].devices[k];
      json_array_append_new(
          list,
          json_pack("{sssssIsIsb}", "tenant", w->tenants[i].id, "id", d->id,
                    "orders", (json_int_t)d->orders, "mutations",
                    (json_int_t)(d->next_mid - 1), "uncertain", d->uncertain));
    }
  return json_pack("{sisIsIso}", "count", w->ntenants * w->devices, "orders",
                   (json_int_t)orders, "mutations", (json_int_t)mutations,
                   "list", list);
}

static long load_failures(const load_result *r, long *ops) {
  long f = 0;
  *ops = 0;
  for (int i = 0; i < OP_COUNT; i++) {
    f += stats_failures(&r->ops[i]);
    *ops += r->ops[i].count;
  }
  return f;
}

static void report_table(const args *a, bots_world *w, load_result *r,
                         double setup_s, const rt_result *rt) {
  long ops, failed = load_failures(r, &ops), counts[ST_COUNT], total;
  printf("load bots against %s: %d tenants x (1 owner, 1 staff, %d "
         "customers, %d products)\n",
         w->base, w->ntenants, w->customers, w->products);
  printf("set-up: %ld requests in %.1f s, %ld failed\n", w->setup.count,
         setup_s, stats_failures(&w->setup));
  printf(
      "load: %ld operations in %.1f s (%.1f/s; target %.0f/s, "
      "concurrency %d), %ld failed, %ld started late, %ld without answer\n\n",
      ops, r->elapsed_s, r->elapsed_s > 0 ? ops / r->elapsed_s : 0,
      a->load.rate, a->load.concurrency, failed, r->late, r->uncertain);
  stats_header(stdout);
  for (int i = 0; i < OP_COUNT; i++) stats_row(stdout, &r->ops[i]);
  order_counts(w, counts, &total);
  printf("\norders placed: %ld (", total);
  for (int s = 0; s < ST_COUNT; s++)
    printf("%s%s %ld", s ? ", " : "", kStatusNames[s], counts[s]);
  printf(")\n");
  long dorders, dmut;
  device_counts(w, &dorders, &dmut);
  if (w->devices > 0)
    printf("devices: %d (%d per tenant, heartbeat every %.0f s), %ld orders "
           "placed by devices, %ld mutations sent\n",
           w->ntenants * w->devices, w->devices, a->load.beat_s, dorders, dmut);
  if (rt->on)
    printf("realtime: %ld listeners on orders.<tenant>, %ld of %ld events "
           "delivered (%ld missing; %ld other events), %ld connections "
           "lost\n",
           rt->listeners, rt->delivered, rt->expected,
           rt->expected - rt->delivered, rt->others, rt->dropped);
}

static void report_json(const args *a, bots_world *w, load_result *r,
                        double setup_s, const rt_result *rt) {
  long ops, failed = load_failures(r, &ops), counts[ST_COUNT], total;
  json_t *opj = json_object(), *byst = json_object(), *tenants = json_array();
  for (int i = 0; i < OP_COUNT; i++)
    json_object_set_new(opj, r->ops[i].name, stats_json(&r->ops[i]));
  order_counts(w, counts, &total);
  for (int s = 0; s < ST_COUNT; s++)
    json_object_set_new(byst, kStatusNames[s], json_integer(counts[s]));
  for (int i = 0; i < w->ntenants; i++)
    json_array_append_new(tenants, json_pack("{ssss}", "id", w->tenants[i].id,
                                             "slug", w->tenants[i].slug));
  json_t *o = json_pack(
      "{sss{sisfsfsi}s{sIsf}s{sfsIsIsIsI}sos{sIso}so}", "server", w->base,
      "config", "tenants", w->ntenants, "duration_s", a->load.duration_s,
      "rate", a->load.rate, "concurrency", a->load.concurrency, "setup",
      "requests", (json_int_t)w->setup.count, "seconds", setup_s, "load",
      "seconds", r->elapsed_s, "operations", (json_int_t)ops, "failed",
      (json_int_t)failed, "late_starts", (json_int_t)r->late, "unanswered",
      (json_int_t)r->uncertain, "operations", opj, "orders", "placed",
      (json_int_t)total, "by_status", byst, "tenants", tenants);
  json_t *cfg = json_object_get(o, "config");
  json_object_set_new(cfg, "devices", json_integer(w->devices));
  json_object_set_new(cfg, "heartbeat_s", json_real(a->load.beat_s));
  json_object_set_new(o, "devices", devices_json(w));
  json_object_set_new(o, "realtime",
                      rt->on ? json_pack("{sIsIsIsIsI}", "listeners",
                                         (json_int_t)rt->listeners,
                                         "other_events", (json_int_t)rt->others,
                                         "expected", (json_int_t)rt->expected,
                                         "delivered", (json_int_t)rt->delivered,
                                         "dropped", (json_int_t)rt->dropped)
                             : json_null());
  json_dumpf(o, stdout, JSON_COMPACT);
  putchar('\n');
  json_decref(o);
}

/* Every change the bots made is one event on orders.<tenant>. */
static long expected_events(const load_result *r) {
  return r->ops[OP_CREATE_ORDER].ok + r->ops[OP_ADVANCE_ORDER].ok +
         r->ops[OP_CANCEL_ORDER].ok + r->device_changes;
}

/* Set-up, listeners, load, settle, report; the exit code. */
static int run(args *a, bots_world *w, load_result *r) {
  int64_t t0 = time_mono_ns();
  if (world_setup(w) != 0) return 3;
  double setup_s = (double)(time_mono_ns() - t0) / 1e9;
  rt_result rt = {.on = a->realtime != NULL, .listeners = w->ntenants};
  listeners *ls = NULL;
  if (rt.on && (ls = listeners_start(w, a->realtime, 15000)) == NULL) return 3;
  if (load_run(w, &a->load, r) != 0) {
    fprintf(stderr, "bots: local failure (memory or libcurl)\n");
    listeners_stop(ls);
    return 4;
  }
  if (rt.on) {
    rt.expected = expected_events(r);
    rt.delivered = listeners_settle(ls, rt.expected, 3000, 15000);
    rt.dropped = listeners_dropped(ls);
    rt.others = listeners_others(ls);
    listeners_stop(ls);
  }
  (a->json ? report_json : report_table)(a, w, r, setup_s, &rt);
  long ops;
  bool rt_ok = !rt.on || (rt.delivered == rt.expected && rt.dropped == 0);
  return load_failures(r, &ops) == 0 && rt_ok ? 0 : 1;
}

int main(int argc, char **argv) {
  static bots_world w = {.base = "http://127.0.0.1:8080",
                         .timeout_ms = 10000,
                         .ntenants = 2,
                         .customers = 3,
                         .products = 5,
                         .devices = 1,
                         .stock = 1000000};
  args a = {
      .load = {.rate = 20, .duration_s = 10, .concurrency = 16, .beat_s = 30}};
  int rc = parse(&a, &w, argc, argv);
  if (rc != 0) return rc;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 4;
  static load_result r;
  rc = run(&a, &w, &r);
  load_result_free(&r);
  world_free(&w);
  curl_global_cleanup();
  return rc;
}
