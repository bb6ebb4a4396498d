/*
 * tenantdir.c - in-process resolver cache for tenants (see tenantdir.h).
 *
 * A chained hash table (FNV-1a over the key) plus one list in insertion
 * order: the list gives O(1) eviction of the oldest entry when the table
 * is full and a simple walk for "forget tenant X", which is rare (an event
 * per tenant change) and so may be linear. Keys are "s:<slug>" or
 * "h:<host>", both normalised, stored inline in the node (no second
 * allocation per entry).
 *
 * The generation counter is the whole answer to the fetch/invalidate race:
 * a resolver notes it before fetching without the lock, and inserts its
 * answer only if no forget happened meanwhile.
 */
#include "libs/tenantdir/tenantdir.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "proto/tenants/v1/tenants.pb-c.h"

#define KEY_MAX (2 + TENANTNAME_HOST_MAX + 1)
#define MAX_EVENT_PAYLOAD (64 * 1024)

typedef struct node {
  struct node *chain; /* next in the bucket */
  struct node *older; /* age list */
  struct node *newer;
  uint64_t hash;
  int64_t expires_ms;
  bool negative; /* cached "not found" */
  tenantdir_entry e;
  char key[KEY_MAX];
} node;

struct tenantdir {
  pthread_mutex_t mu;
  tenantdir_options o;
  node **buckets;
  size_t nbuckets; /* power of two */
  node *oldest, *newest;
  size_t count;
  uint64_t generation; /* bumped by every forget */
  tenantdir_stats st;
};

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

static int64_t now_ms(const tenantdir *td) {
  return td->o.now_ms ? td->o.now_ms() : time_mono_ms();
}

/* ---------------------------------------------------- the RPC fetcher --- */

static int rpc_fetch(void *arg, bool by_host, const char *key,
                     tenantdir_entry *out) {
  tenantdir *td = arg;
  Tenants__V1__ResolveRequest req = TENANTS__V1__RESOLVE_REQUEST__INIT;
  if (by_host) {
    req.key_case = TENANTS__V1__RESOLVE_REQUEST__KEY_HOST;
    req.host = (char *)key;
  } else {
    req.key_case = TENANTS__V1__RESOLVE_REQUEST__KEY_SLUG;
    req.slug = (char *)key;
  }
  rpc_call_options co = RPC_CALL_OPTIONS_INIT;
  co.deadline_ms = td->o.deadline_ms;
  co.idempotent = true;
  rpc_result *res = NULL;
  int rc = rpc_client_call_message(td->o.client, TENANTDIR_RESOLVE_METHOD,
                                   &req.base, &co, &res);
  if (rc != ERR_OK) return rc == ERR_NOMEM ? ERR_NOMEM : ERR_INTERNAL;
  switch (res->code) {
  case RPC_OK:
    break;
  case RPC_NOT_FOUND:
    rc = ERR_NOTFOUND;
    goto out;
  case RPC_INVALID_ARGUMENT:
    rc = ERR_INVAL;
    goto out;
  case RPC_DEADLINE_EXCEEDED:
    rc = ERR_TIMEOUT;
    goto out;
  default:
    rc = ERR_UNAVAILABLE;
    goto out;
  }
  Tenants__V1__ResolveResponse *r = tenants__v1__resolve_response__unpack(
      NULL, res->payload_len, res->payload);
  if (r == NULL) {
    rc = ERR_UNAVAILABLE;
    goto out;
  }
  if (!uuid_is_valid(r->tenant_id) || strlen(r->slug) > TENANTNAME_SLUG_MAX ||
      strlen(r->status) >= sizeof out->status) {
    rc = ERR_UNAVAILABLE; /* a broken peer: do not cache garbage */
  } else {
    str_copy(out->tenant_id, r->tenant_id, sizeof out->tenant_id);
    str_copy(out->slug, r->slug, sizeof out->slug);
    str_copy(out->status, r->status, sizeof out->status);
    out->suspended = strcmp(r->status, "suspended") == 0;
    rc = ERR_OK;
  }
  tenants__v1__resolve_response__free_unpacked(r, NULL);
out:
  rpc_result_free(res);
  return rc;
}

/* ------------------------------------------------------------ set-up --- */

int tenantdir_new(const tenantdir_options *opts, tenantdir **out) {
  *out = NULL;
  if (opts == NULL || (opts->client == NULL && opts->fetch == NULL) ||
      opts->ttl_ms < 0 || opts->max_entries > (1u << 24))
    return ERR_INVAL;
  tenantdir *td = calloc(1, sizeof *td);
  if (td == NULL) return ERR_NOMEM;
  td->o = *opts;
  if (td->o.deadline_ms == 0) td->o.deadline_ms = 1000;
  if (td->o.ttl_ms == 0) td->o.ttl_ms = 30000;
  if (td->o.negative_ttl_ms == 0) td->o.negative_ttl_ms = 2000;
  if (td->o.max_entries == 0) td->o.max_entries = 10000;
  if (td->o.fetch == NULL) {
    td->o.fetch = rpc_fetch;
    td->o.fetch_arg = td;
  }
  td->nbuckets = 16;
  while (td->nbuckets < td->o.max_entries) td->nbuckets <<= 1;
  td->buckets = calloc(td->nbuckets, sizeof *td->buckets);
  if (td->buckets == NULL) {
    free(td);
    return ERR_NOMEM;
  }
  if (pthread_mutex_init(&td->mu, NULL) != 0) {
    free(td->buckets);
    free(td);
    return ERR_INTERNAL;
  }
  *out = td;
  return ERR_OK;
}

static void clear_locked(tenantdir *td) {
  node *n = td->oldest;
  while (n != NULL) {
    node *next = n->newer;
    free(n);
    n = next;
  }
  memset(td->buckets, 0, td->nbuckets * sizeof *td->buckets);
  td->oldest = td->newest = NULL;
  td->count = 0;
}

void tenantdir_free(tenantdir *td) {
  if (td == NULL) return;
  clear_locked(td);
  pthread_mutex_destroy(&td->mu);
  free(td->buckets);
  free(td);
}

/* ----------------------------------------------------------- the table --- */

static node *find_locked(tenantdir *td, const char *key, uint64_t h) {
  for (node *n = td->buckets[h & (td->nbuckets - 1)]; n; n = n->chain)
    if (n->hash == h && strcmp(n->key, key) == 0) return n;
  return NULL;
}

static void unlink_locked(tenantdir *td, node *n) {
  node **pp = &td->buckets[n->hash & (td->nbuckets - 1)];
  while (*pp != n) pp = &(*pp)->chain;
  *pp = n->chain;
  if (n->older)
    n->older->newer = n->newer;
  else
    td->oldest = n->newer;
  if (n->newer)
    n->newer->older = n->older;
  else
    td->newest = n->older;
  td->count--;
  free(n);
}

static void insert_locked(tenantdir *td, const char *key, uint64_t h,
                          bool negative, const tenantdir_entry *e,
                          int64_t now) {
  node *old = find_locked(td, key, h);
  if (old != NULL) unlink_locked(td, old);
  if (td->count >= td->o.max_entries && td->oldest != NULL) {
    unlink_locked(td, td->oldest);
    td->st.evictions++;
  }
  node *n = calloc(1, sizeof *n);
  if (n == NULL) return; /* caching is an optimisation: skip it */
  str_copy(n->key, key, sizeof n->key);
  n->hash = h;
  n->negative = negative;
  n->expires_ms = now + (negative ? td->o.negative_ttl_ms : td->o.ttl_ms);
  if (e != NULL) n->e = *e;
  size_t b = h & (td->nbuckets - 1);
  n->chain = td->buckets[b];
  td->buckets[b] = n;
  n->older = td->newest;
  if (td->newest)
    td->newest->newer = n;
  else
    td->oldest = n;
  td->newest = n;
  td->count++;
}

/* The common path of both resolve calls. key is "s:..." or "h:...";
 * lookup is the bare slug or host passed to the fetcher. */
static int resolve(tenantdir *td, const char *key, const char *lookup,
                   bool by_host, tenantdir_entry *out) {
  uint64_t h = fnv1a(key);
  pthread_mutex_lock(&td->mu);
  int64_t now = now_ms(td);
  node *n = find_locked(td, key, h);
  if (n != NULL && n->expires_ms > now) {
    td->st.hits++;
    int rc = n->negative ? ERR_NOTFOUND : ERR_OK;
    if (!n->negative) *out = n->e;
    pthread_mutex_unlock(&td->mu);
    return rc;
  }
  if (n != NULL) unlink_locked(td, n);
  uint64_t gen = td->generation;
  td->st.misses++;
  pthread_mutex_unlock(&td->mu);

  tenantdir_entry e;
  memset(&e, 0, sizeof e);
  int rc = td->o.fetch(td->o.fetch_arg, by_host, lookup, &e);

  pthread_mutex_lock(&td->mu);
  if (rc == ERR_OK || (rc == ERR_NOTFOUND && td->o.negative_ttl_ms > 0)) {
    if (gen == td->generation)
      insert_locked(td, key, h, rc == ERR_NOTFOUND, &e, now_ms(td));
  } else if (rc != ERR_NOTFOUND && rc != ERR_INVAL) {
    td->st.fetch_errors++;
  }
  pthread_mutex_unlock(&td->mu);
  if (rc == ERR_OK) *out = e;
  return rc;
}

int tenantdir_resolve_slug(tenantdir *td, const char *slug,
                           tenantdir_entry *out) {
  if (td == NULL || slug == NULL || out == NULL) return ERR_INVAL;
  char key[KEY_MAX];
  size_t n = strnlen(slug, TENANTNAME_SLUG_MAX + 1);
  if (n > TENANTNAME_SLUG_MAX) return ERR_INVAL;
  key[0] = 's';
  key[1] = ':';
  for (size_t i = 0; i < n; i++) {
    char c = slug[i];
    key[2 + i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  key[2 + n] = '\0';
  if (tenantname_check_slug(key + 2, NULL) != ERR_OK) return ERR_INVAL;
  return resolve(td, key, key + 2, false, out);
}

int tenantdir_resolve_host(tenantdir *td, const char *host,
                           tenantdir_entry *out) {
  if (td == NULL || host == NULL || out == NULL) return ERR_INVAL;
  char key[KEY_MAX];
  key[0] = 'h';
  key[1] = ':';
  if (tenantname_normalize_host(host, key + 2, sizeof key - 2) != ERR_OK)
    return ERR_INVAL;
  return resolve(td, key, key + 2, true, out);
}

/* ------------------------------------------------------- invalidation --- */

void tenantdir_forget_tenant(tenantdir *td, const char *tenant_id) {
  if (td == NULL) return;
  pthread_mutex_lock(&td->mu);
  td->generation++;
  td->st.invalidations++;
  if (tenant_id == NULL || tenant_id[0] == '\0') {
    clear_locked(td);
  } else {
    node *n = td->oldest;
    while (n != NULL) {
      node *next = n->newer;
      if (n->negative || strcmp(n->e.tenant_id, tenant_id) == 0)
        unlink_locked(td, n);
      n = next;
    }
  }
  pthread_mutex_unlock(&td->mu);
}

void tenantdir_forget_all(tenantdir *td) { tenantdir_forget_tenant(td, NULL); }

void tenantdir_on_event(tenantdir *td, const char *topic,
                        const Rpc__V1__Event *ev) {
  if (td == NULL || topic == NULL || strcmp(topic, TENANTDIR_TOPIC) != 0)
    return;
  if (ev == NULL) {
    tenantdir_forget_all(td);
    return;
  }
  if (ev->tenant_id != NULL && uuid_is_valid(ev->tenant_id)) {
    tenantdir_forget_tenant(td, ev->tenant_id);
    return;
  }
  char tid[UUID_STR_LEN + 1] = "";
  if (ev->payload.len > 0 && ev->payload.len <= MAX_EVENT_PAYLOAD) {
    Tenants__V1__TenantChanged *tc = tenants__v1__tenant_changed__unpack(
        NULL, ev->payload.len, ev->payload.data);
    if (tc != NULL) {
      if (uuid_is_valid(tc->tenant_id))
        str_copy(tid, tc->tenant_id, sizeof tid);
      tenants__v1__tenant_changed__free_unpacked(tc, NULL);
    }
  }
  tenantdir_forget_tenant(td, tid); /* "" forgets everything */
}

void tenantdir_get_stats(tenantdir *td, tenantdir_stats *out) {
  pthread_mutex_lock(&td->mu);
  *out = td->st;
  out->entries = td->count;
  pthread_mutex_unlock(&td->mu);
}
