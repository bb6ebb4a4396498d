/*
 * tenantdir.h - the client side of tenant resolution: slug or host name ->
 * tenant id and status, answered from an in-process cache and filled from
 * the tenants service ("tenants.v1.Tenants/Resolve").
 *
 * The gateway resolves the tenant of every anonymous request (Host header,
 * X-Tenant) and services check that a tenant is not suspended; asking the
 * tenants service each time would put it on every request's path. A
 * tenantdir keeps answers for ttl_ms (and "no such tenant" for
 * negative_ttl_ms), and drops them early when the tenants service says
 * something changed: feed every event received on topic "tenants.changed"
 * to tenantdir_on_event (or call tenantdir_forget_* directly). Without
 * events the staleness is bounded by the TTLs.
 *
 *   tenantdir_options o = TENANTDIR_OPTIONS_INIT;
 *   o.client = tenants_rpc_client;            // borrowed
 *   tenantdir *td;
 *   if (tenantdir_new(&o, &td) != ERR_OK) ...
 *   tenantdir_entry e;
 *   int rc = tenantdir_resolve_host(td, host_header, &e);
 *   if (rc == ERR_NOTFOUND) ... 404 ...
 *   if (rc == ERR_OK && e.suspended) ... 403 ...
 *
 * Races. An answer fetched while an invalidation happened is not cached
 * (a generation counter is compared before inserting), so an event never
 * loses to a slower fetch that started before it.
 *
 * Keys are normalised (tenantname.h) before lookup, so "Foo.Example.com:443"
 * and "foo.example.com" share an entry; slugs are looked up lower-cased.
 * The cache holds at most max_entries; when full the oldest entry goes.
 * Thread-safe; fetches run without the lock (two threads missing the same
 * key may both fetch; the second answer simply replaces the first).
 */
#ifndef TENANTDIR_TENANTDIR_H
#define TENANTDIR_TENANTDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/base/uuid.h"
#include "libs/rpc/rpc.h"
#include "libs/tenantdir/tenantname.h"
#include "proto/rpc/v1/rpc.pb-c.h"

#define TENANTDIR_TOPIC "tenants.changed"
#define TENANTDIR_RESOLVE_METHOD "tenants.v1.Tenants/Resolve"

typedef struct tenantdir tenantdir;

/* One answer. Strings are NUL-terminated copies. */
typedef struct tenantdir_entry {
  char tenant_id[UUID_STR_LEN + 1];
  char slug[TENANTNAME_SLUG_MAX + 1];
  char status[16]; /* "active" | "suspended" (as the service says) */
  bool suspended;  /* status is "suspended" */
} tenantdir_entry;

/* Asks the source of truth. by_host says whether key is a normalised host
 * or a slug. Returns ERR_OK with *out filled, ERR_NOTFOUND (no such
 * tenant: cached negatively), ERR_INVAL (the service refused the key), or
 * ERR_UNAVAILABLE / ERR_TIMEOUT (not cached). Called without locks, from
 * the resolving thread. */
typedef int (*tenantdir_fetch_fn)(void *arg, bool by_host, const char *key,
                                  tenantdir_entry *out);

typedef struct tenantdir_options {
  rpc_client *client;      /* borrowed: used by the built-in fetcher;
                              must outlive the tenantdir */
  uint32_t deadline_ms;    /* per Resolve call; 0 -> 1000 */
  int64_t ttl_ms;          /* found answers; 0 -> 30000 */
  int64_t negative_ttl_ms; /* "not found"; 0 -> 2000; < 0 disables */
  size_t max_entries;      /* 0 -> 10000 */
  /* Tests and special callers: replace the RPC fetcher (client unused)
   * and the clock (milliseconds, monotonic; default time_mono_ms). */
  tenantdir_fetch_fn fetch;
  void *fetch_arg;
  int64_t (*now_ms)(void);
} tenantdir_options;

#define TENANTDIR_OPTIONS_INIT                                                 \
  { NULL, 0, 0, 0, 0, NULL, NULL, NULL }

/* Creates a directory. opts is copied. Errors: ERR_INVAL (neither client
 * nor fetch given, negative ttl_ms, max_entries over 1 << 24), ERR_NOMEM.
 * *out is the caller's (tenantdir_free). */
int tenantdir_new(const tenantdir_options *opts, tenantdir **out) WARN_UNUSED;

/* Frees the cache. No call may be running. NULL-safe. */
void tenantdir_free(tenantdir *td);

/* Resolves a slug (case-insensitive) / a host name or Host header value
 * (see tenantname_normalize_host). On ERR_OK *out is filled. Errors:
 * ERR_INVAL (malformed slug or host: no tenant can have it; nothing is
 * fetched), ERR_NOTFOUND, ERR_UNAVAILABLE / ERR_TIMEOUT (the tenants
 * service could not answer; try again later). */
int tenantdir_resolve_slug(tenantdir *td, const char *slug,
                           tenantdir_entry *out) WARN_UNUSED;
int tenantdir_resolve_host(tenantdir *td, const char *host,
                           tenantdir_entry *out) WARN_UNUSED;

/* Drops every answer about tenant_id and every negative answer (a new
 * tenant or domain may now exist), and makes fetches in flight not cache
 * their answer. NULL or "" tenant_id drops everything. */
void tenantdir_forget_tenant(tenantdir *td, const char *tenant_id);

/* Drops everything (e.g. after the event stream had a gap). */
void tenantdir_forget_all(tenantdir *td);

/* Feeds one bus event. On topic TENANTDIR_TOPIC it forgets the event's
 * tenant (the envelope's tenant_id, else the TenantChanged payload's;
 * everything if neither can be read). Other topics are ignored. topic
 * and ev stay the caller's. */
void tenantdir_on_event(tenantdir *td, const char *topic,
                        const Rpc__V1__Event *ev);

typedef struct tenantdir_stats {
  uint64_t hits;          /* answered from the cache (found or not) */
  uint64_t misses;        /* fetched */
  uint64_t fetch_errors;  /* fetches that failed (not NOTFOUND/INVAL) */
  uint64_t evictions;     /* dropped because the cache was full */
  uint64_t invalidations; /* forget calls */
  size_t entries;
} tenantdir_stats;

void tenantdir_get_stats(tenantdir *td, tenantdir_stats *out);

#endif
