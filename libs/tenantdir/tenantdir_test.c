/*
 * tenantdir_test.c - the resolver cache with a fake fetcher and a fake
 * clock (TTLs, negative answers, invalidation, the fetch/forget race,
 * eviction, events), and the built-in RPC fetcher against an in-process
 * rpc_server playing the tenants service.
 */
#include <check.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "libs/rpc/rpc.h"
#include "libs/tenantdir/tenantdir.h"
#include "proto/tenants/v1/tenants.pb-c.h"

#define TID_A "0190f0a2-1c4b-7cde-8f00-00000000000a"
#define TID_B "0190f0a2-1c4b-7cde-8f00-00000000000b"

/* ------------------------------------------------------------ fakes --- */

static int64_t fake_now;
static int64_t clock_fn(void) { return fake_now; }

typedef struct fake {
  int calls;
  int rc; /* what the next fetches return */
  char last_key[300];
  bool last_by_host;
  const char *status;
  tenantdir *td; /* forget during the fetch (race test) */
} fake;

static int fake_fetch(void *arg, bool by_host, const char *key,
                      tenantdir_entry *out) {
  fake *f = arg;
  f->calls++;
  snprintf(f->last_key, sizeof f->last_key, "%s", key);
  f->last_by_host = by_host;
  if (f->td != NULL) tenantdir_forget_tenant(f->td, TID_A);
  if (f->rc != ERR_OK) return f->rc;
  bool b = strstr(key, "bbb") != NULL;
  snprintf(out->tenant_id, sizeof out->tenant_id, "%s", b ? TID_B : TID_A);
  snprintf(out->slug, sizeof out->slug, "%s", b ? "bbb" : "aaa");
  snprintf(out->status, sizeof out->status, "%s",
           f->status ? f->status : "active");
  out->suspended = f->status && strcmp(f->status, "suspended") == 0;
  return ERR_OK;
}

static tenantdir *make(fake *f, int64_t ttl, int64_t neg, size_t max) {
  tenantdir_options o = TENANTDIR_OPTIONS_INIT;
  o.fetch = fake_fetch;
  o.fetch_arg = f;
  o.now_ms = clock_fn;
  o.ttl_ms = ttl;
  o.negative_ttl_ms = neg;
  o.max_entries = max;
  tenantdir *td = NULL;
  ck_assert_int_eq(tenantdir_new(&o, &td), ERR_OK);
  fake_now = 1000;
  return td;
}

/* ------------------------------------------------------------- cache --- */

START_TEST(second_lookup_is_a_hit_until_ttl) {
  fake f = {0};
  tenantdir *td = make(&f, 5000, 1000, 0);
  tenantdir_entry e;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert_str_eq(e.tenant_id, TID_A);
  ck_assert_str_eq(e.slug, "aaa");
  ck_assert_str_eq(e.status, "active");
  ck_assert(!e.suspended);
  ck_assert_str_eq(f.last_key, "aaa");
  ck_assert(!f.last_by_host);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "AAA", &e),
                   ERR_OK); /* same key */
  ck_assert_int_eq(f.calls, 1);
  fake_now += 4999;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert_int_eq(f.calls, 1);
  fake_now += 1;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert_int_eq(f.calls, 2);
  tenantdir_stats st;
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.hits, 2);
  ck_assert_uint_eq(st.misses, 2);
  ck_assert_uint_eq(st.entries, 1);
  tenantdir_free(td);
}
END_TEST

START_TEST(hosts_share_an_entry_after_normalisation) {
  fake f = {0};
  tenantdir *td = make(&f, 5000, 1000, 0);
  tenantdir_entry e;
  ck_assert_int_eq(tenantdir_resolve_host(td, "Order.Pizza.IT:8443", &e),
                   ERR_OK);
  ck_assert_str_eq(f.last_key, "order.pizza.it");
  ck_assert(f.last_by_host);
  ck_assert_int_eq(tenantdir_resolve_host(td, "order.pizza.it.", &e), ERR_OK);
  ck_assert_int_eq(f.calls, 1);
  /* a slug and a host with the same text are different keys */
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert_int_eq(tenantdir_resolve_host(td, "aaa", &e), ERR_OK);
  ck_assert_int_eq(f.calls, 3);
  tenantdir_free(td);
}
END_TEST

START_TEST(malformed_keys_are_refused_without_fetching) {
  fake f = {0};
  tenantdir *td = make(&f, 5000, 1000, 0);
  tenantdir_entry e;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "a", &e), ERR_INVAL);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "www", &e), ERR_INVAL);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "a_b_c", &e), ERR_INVAL);
  ck_assert_int_eq(tenantdir_resolve_slug(
                       td, "abcdefghijabcdefghijabcdefghijabcdefghij", &e),
                   ERR_INVAL);
  ck_assert_int_eq(tenantdir_resolve_host(td, "bad host", &e), ERR_INVAL);
  ck_assert_int_eq(tenantdir_resolve_host(td, "[::1]:80", &e), ERR_INVAL);
  ck_assert_int_eq(tenantdir_resolve_host(td, NULL, &e), ERR_INVAL);
  ck_assert_int_eq(f.calls, 0);
  tenantdir_free(td);
}
END_TEST

START_TEST(not_found_is_cached_for_the_negative_ttl) {
  fake f = {.rc = ERR_NOTFOUND};
  tenantdir *td = make(&f, 5000, 1000, 0);
  tenantdir_entry e;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "nope", &e), ERR_NOTFOUND);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "nope", &e), ERR_NOTFOUND);
  ck_assert_int_eq(f.calls, 1);
  fake_now += 1000;
  f.rc = ERR_OK;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "nope", &e), ERR_OK);
  ck_assert_int_eq(f.calls, 2);
  tenantdir_free(td);
}
END_TEST

START_TEST(negative_caching_can_be_disabled) {
  fake f = {.rc = ERR_NOTFOUND};
  tenantdir *td = make(&f, 5000, -1, 0);
  tenantdir_entry e;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "nope", &e), ERR_NOTFOUND);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "nope", &e), ERR_NOTFOUND);
  ck_assert_int_eq(f.calls, 2);
  tenantdir_free(td);
}
END_TEST

START_TEST(fetch_errors_are_not_cached) {
  fake f = {.rc = ERR_UNAVAILABLE};
  tenantdir *td = make(&f, 5000, 1000, 0);
  tenantdir_entry e;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_UNAVAILABLE);
  f.rc = ERR_TIMEOUT;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_TIMEOUT);
  f.rc = ERR_INVAL;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_INVAL);
  f.rc = ERR_OK;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert_int_eq(f.calls, 4);
  tenantdir_stats st;
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.fetch_errors, 2);
  tenantdir_free(td);
}
END_TEST

START_TEST(forget_tenant_drops_its_entries_and_all_negatives) {
  fake f = {0};
  tenantdir *td = make(&f, 5000, 5000, 0);
  tenantdir_entry e;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert_int_eq(tenantdir_resolve_host(td, "a.example.com", &e), ERR_OK);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "bbb", &e), ERR_OK);
  f.rc = ERR_NOTFOUND;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "new-one", &e), ERR_NOTFOUND);
  ck_assert_int_eq(f.calls, 4);
  tenantdir_forget_tenant(td, TID_A);
  tenantdir_stats st;
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.entries, 1); /* only bbb is left */
  f.rc = ERR_OK;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "bbb", &e), ERR_OK);
  ck_assert_int_eq(f.calls, 4);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "new-one", &e), ERR_OK);
  ck_assert_int_eq(f.calls, 6);
  tenantdir_forget_all(td);
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.entries, 0);
  ck_assert_uint_eq(st.invalidations, 2);
  tenantdir_free(td);
}
END_TEST

START_TEST(a_fetch_racing_a_forget_is_not_cached) {
  fake f = {0};
  tenantdir *td = make(&f, 5000, 5000, 0);
  f.td = td; /* the fetcher forgets tenant A while "in flight" */
  tenantdir_entry e;
  f.status = "active";
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert_str_eq(e.tenant_id, TID_A); /* the answer is still returned */
  tenantdir_stats st;
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.entries, 0);
  f.td = NULL;
  f.status = "suspended";
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert(e.suspended);
  ck_assert_int_eq(f.calls, 2);
  tenantdir_free(td);
}
END_TEST

START_TEST(full_cache_evicts_the_oldest) {
  fake f = {.rc = ERR_NOTFOUND};
  tenantdir *td = make(&f, 5000, 5000, 3);
  tenantdir_entry e;
  const char *keys[] = {"k01", "k02", "k03", "k04"};
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(tenantdir_resolve_slug(td, keys[i], &e), ERR_NOTFOUND);
  tenantdir_stats st;
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.entries, 3);
  ck_assert_uint_eq(st.evictions, 1);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "k04", &e), ERR_NOTFOUND);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "k02", &e), ERR_NOTFOUND);
  ck_assert_int_eq(f.calls, 4);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "k01", &e), ERR_NOTFOUND);
  ck_assert_int_eq(f.calls, 5);
  tenantdir_free(td);
}
END_TEST

START_TEST(many_entries_with_collisions_stay_consistent) {
  fake f = {.rc = ERR_NOTFOUND};
  tenantdir *td = make(&f, 5000, 5000, 500);
  tenantdir_entry e;
  char k[16];
  for (int i = 0; i < 2000; i++) {
    snprintf(k, sizeof k, "key%d", i);
    ck_assert_int_eq(tenantdir_resolve_slug(td, k, &e), ERR_NOTFOUND);
  }
  tenantdir_stats st;
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.entries, 500);
  ck_assert_uint_eq(st.evictions, 1500);
  for (int i = 1500; i < 2000; i++) {
    snprintf(k, sizeof k, "key%d", i);
    ck_assert_int_eq(tenantdir_resolve_slug(td, k, &e), ERR_NOTFOUND);
  }
  ck_assert_int_eq(f.calls, 2000);
  tenantdir_free(td);
}
END_TEST

START_TEST(events_forget_the_named_tenant) {
  fake f = {0};
  tenantdir *td = make(&f, 5000, 5000, 0);
  tenantdir_entry e;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "bbb", &e), ERR_OK);
  Rpc__V1__Event ev = RPC__V1__EVENT__INIT;
  ev.tenant_id = TID_A;
  tenantdir_on_event(td, "orders." TID_A, &ev); /* other topic: ignored */
  tenantdir_stats st;
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.entries, 2);
  tenantdir_on_event(td, "tenants.changed", &ev);
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.entries, 1);

  /* tenant id only in the payload */
  Tenants__V1__TenantChanged tc = TENANTS__V1__TENANT_CHANGED__INIT;
  tc.tenant_id = TID_B;
  tc.change = "suspended";
  uint8_t buf[256];
  size_t n = tenants__v1__tenant_changed__pack(&tc, buf);
  Rpc__V1__Event ev2 = RPC__V1__EVENT__INIT;
  ev2.payload.data = buf;
  ev2.payload.len = n;
  tenantdir_on_event(td, "tenants.changed", &ev2);
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.entries, 0);
  tenantdir_free(td);
}
END_TEST

START_TEST(unreadable_events_forget_everything) {
  fake f = {0};
  tenantdir *td = make(&f, 5000, 5000, 0);
  tenantdir_entry e;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "bbb", &e), ERR_OK);
  uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  Rpc__V1__Event ev = RPC__V1__EVENT__INIT;
  ev.payload.data = garbage;
  ev.payload.len = sizeof garbage;
  tenantdir_on_event(td, "tenants.changed", &ev);
  tenantdir_stats st;
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.entries, 0);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  tenantdir_on_event(td, "tenants.changed", NULL);
  tenantdir_get_stats(td, &st);
  ck_assert_uint_eq(st.entries, 0);
  tenantdir_free(td);
}
END_TEST

START_TEST(options_are_checked) {
  tenantdir *td = (tenantdir *)1;
  tenantdir_options o = TENANTDIR_OPTIONS_INIT;
  ck_assert_int_eq(tenantdir_new(&o, &td), ERR_INVAL); /* no fetcher */
  ck_assert_ptr_null(td);
  ck_assert_int_eq(tenantdir_new(NULL, &td), ERR_INVAL);
  fake f = {0};
  o.fetch = fake_fetch;
  o.fetch_arg = &f;
  o.ttl_ms = -5;
  ck_assert_int_eq(tenantdir_new(&o, &td), ERR_INVAL);
  o.ttl_ms = 0;
  o.max_entries = (1u << 24) + 1;
  ck_assert_int_eq(tenantdir_new(&o, &td), ERR_INVAL);
  tenantdir_free(NULL);
  tenantdir_forget_all(NULL);
}
END_TEST

/* ----------------------------------------------------- the RPC fetcher --- */

static atomic_int resolve_calls;

/* Plays tenants.v1.Tenants/Resolve: "aaa" found, "sick" UNAVAILABLE,
 * "junk" an undecodable reply, "bad-id" a reply with a malformed id,
 * hosts under example.com found, the rest NOT_FOUND. */
static void fake_resolve(void *arg, const rpc_call *call, rpc_reply *reply) {
  atomic_fetch_add(&resolve_calls, 1);
  Tenants__V1__ResolveRequest *req = tenants__v1__resolve_request__unpack(
      NULL, call->payload_len, call->payload);
  if (req == NULL) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "undecodable");
    return;
  }
  const char *key =
      req->key_case == TENANTS__V1__RESOLVE_REQUEST__KEY_SLUG   ? req->slug
      : req->key_case == TENANTS__V1__RESOLVE_REQUEST__KEY_HOST ? req->host
                                                                : "";
  bool host = req->key_case == TENANTS__V1__RESOLVE_REQUEST__KEY_HOST;
  Tenants__V1__ResolveResponse r = TENANTS__V1__RESOLVE_RESPONSE__INIT;
  if (!host && strcmp(key, "aaa") == 0) {
    r.tenant_id = TID_A;
    r.slug = "aaa";
    r.status = "suspended";
    ck_assert_int_eq(rpc_reply_set_message(reply, &r.base), ERR_OK);
  } else if (host && strstr(key, ".example.com") != NULL) {
    r.tenant_id = TID_B;
    r.slug = "bbb";
    r.status = "active";
    ck_assert_int_eq(rpc_reply_set_message(reply, &r.base), ERR_OK);
  } else if (strcmp(key, "sick") == 0) {
    rpc_reply_status(reply, RPC_UNAVAILABLE, "try later");
  } else if (strcmp(key, "junk") == 0) {
    ck_assert_int_eq(rpc_reply_set_payload(reply, "\xff\xff\xff", 3), ERR_OK);
  } else if (strcmp(key, "bad-id") == 0) {
    r.tenant_id = "not-a-uuid";
    r.slug = "bad-id";
    r.status = "active";
    ck_assert_int_eq(rpc_reply_set_message(reply, &r.base), ERR_OK);
  } else if (strcmp(key, "refused") == 0) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "no");
  } else {
    rpc_reply_status(reply, RPC_NOT_FOUND, "no such tenant");
  }
  tenants__v1__resolve_request__free_unpacked(req, NULL);
}

START_TEST(rpc_fetcher_maps_the_service_answers) {
  rpc_server *srv = NULL;
  ck_assert_int_eq(rpc_server_new(NULL, &srv), ERR_OK);
  ck_assert_int_eq(
      rpc_server_register(srv, TENANTDIR_RESOLVE_METHOD, fake_resolve, NULL),
      ERR_OK);
  ck_assert_int_eq(rpc_server_start(srv, "tcp://127.0.0.1:0"), ERR_OK);
  char url[64];
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", rpc_server_port(srv));
  rpc_client *cli = NULL;
  ck_assert_int_eq(rpc_client_new(url, NULL, &cli), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(cli, 1, 10000), ERR_OK);

  tenantdir_options o = TENANTDIR_OPTIONS_INIT;
  o.client = cli;
  o.deadline_ms = 5000;
  tenantdir *td = NULL;
  ck_assert_int_eq(tenantdir_new(&o, &td), ERR_OK);
  tenantdir_entry e;
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  ck_assert_str_eq(e.tenant_id, TID_A);
  ck_assert_str_eq(e.status, "suspended");
  ck_assert(e.suspended);
  ck_assert_int_eq(tenantdir_resolve_host(td, "Shop.Example.com:443", &e),
                   ERR_OK);
  ck_assert_str_eq(e.tenant_id, TID_B);
  ck_assert_str_eq(e.slug, "bbb");
  ck_assert(!e.suspended);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "zzz", &e), ERR_NOTFOUND);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "sick", &e), ERR_UNAVAILABLE);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "junk", &e), ERR_UNAVAILABLE);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "bad-id", &e), ERR_UNAVAILABLE);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "refused", &e), ERR_INVAL);
  int before = atomic_load(&resolve_calls);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK); /* cached */
  ck_assert_int_eq(tenantdir_resolve_slug(td, "zzz", &e), ERR_NOTFOUND);
  ck_assert_int_eq(atomic_load(&resolve_calls), before);
  /* unavailable answers were not cached: asked again (the rpc client may
   * retry an idempotent UNAVAILABLE, so count at least one more) */
  ck_assert_int_eq(tenantdir_resolve_slug(td, "sick", &e), ERR_UNAVAILABLE);
  ck_assert_int_gt(atomic_load(&resolve_calls), before);

  /* the service goes away: answers already cached still work, new ones
   * fail as UNAVAILABLE or TIMEOUT, never hang */
  rpc_server_close(srv);
  ck_assert_int_eq(tenantdir_resolve_slug(td, "aaa", &e), ERR_OK);
  int rc = tenantdir_resolve_slug(td, "other", &e);
  ck_assert_msg(rc == ERR_UNAVAILABLE || rc == ERR_TIMEOUT, "rc=%s",
                err_str(rc));
  tenantdir_free(td);
  rpc_client_free(cli);
}
END_TEST

int main(void) {
  Suite *s = suite_create("tenantdir");
  TCase *tc = tcase_create("cache");
  tcase_add_test(tc, second_lookup_is_a_hit_until_ttl);
  tcase_add_test(tc, hosts_share_an_entry_after_normalisation);
  tcase_add_test(tc, malformed_keys_are_refused_without_fetching);
  tcase_add_test(tc, not_found_is_cached_for_the_negative_ttl);
  tcase_add_test(tc, negative_caching_can_be_disabled);
  tcase_add_test(tc, fetch_errors_are_not_cached);
  tcase_add_test(tc, forget_tenant_drops_its_entries_and_all_negatives);
  tcase_add_test(tc, a_fetch_racing_a_forget_is_not_cached);
  tcase_add_test(tc, full_cache_evicts_the_oldest);
  tcase_add_test(tc, many_entries_with_collisions_stay_consistent);
  tcase_add_test(tc, events_forget_the_named_tenant);
  tcase_add_test(tc, unreadable_events_forget_everything);
  tcase_add_test(tc, options_are_checked);
  suite_add_tcase(s, tc);
  TCase *rpc = tcase_create("rpc");
  tcase_set_timeout(rpc, 60);
  tcase_add_test(rpc, rpc_fetcher_maps_the_service_answers);
  suite_add_tcase(s, rpc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
