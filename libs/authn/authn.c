/*
 * authn.c - access-token verification with a verified-token cache (see
 * authn.h).
 *
 * Layout. The cache is an array of sets of AUTHN_WAYS entries; a token's
 * BLAKE2b-256 hash picks its set, and within a set the least recently used
 * entry makes room. Sets are guarded by AUTHN_STRIPES mutexes (set index
 * modulo the stripe count), so verifications of different tokens rarely
 * contend, and nothing is ever allocated after authn_new: the memory is
 * bounded by cache_entries whatever the traffic. An entry keeps the
 * verified claims, the key-set generation it was verified under (a
 * changed key set forces a fresh verification), and the outcome of the
 * last revocation/tenant lookup with the monotonic time it was made.
 * The table holds the claims compactly (`slot`: fields sized for what
 * auth issues - UUIDs, a role, the issuer - about 300 B a slot instead of
 * the 850 B of a full paseto_claims, which matters to a service holding
 * tens of thousands of live tokens, like realtime); a token whose claims
 * do not fit is simply not cached (verified on every call).
 *
 * The expensive and the blocking work - the Ed25519 verification, the
 * Redis MGET, the Keys RPC - always runs outside the stripe locks. Two
 * threads that miss on the same token at once both verify it; the second
 * insert simply refreshes the entry. That is cheaper than making one
 * wait for the other.
 *
 * Revocations only ever tighten: once an entry is revoked it stays so
 * until it is evicted, and a later lookup cannot resurrect it. A tenant's
 * suspension is re-read on every recheck because it can be lifted.
 */
#include "libs/authn/authn.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "proto/rpc/v1/rpc.pb-c.h"

#define AUTHN_WAYS 4
#define AUTHN_STRIPES 64
#define AUTHN_HASHBYTES 32
#define AUTHN_MAX_ENTRIES (1u << 22)
#define AUTHN_KEY_MAX 200 /* "revoked:user:" + a 128-byte claim + NUL */
#define AUTHN_KEYS_REPLY_MAX (64u * 1024u)

enum entry_state { ST_OK = 0, ST_REVOKED, ST_SUSPENDED };

/* A verification in hand (the claims whole). */
typedef struct entry {
  uint8_t h[AUTHN_HASHBYTES];
  bool used;
  uint8_t state;           /* enum entry_state as of checked_mono_ms */
  uint32_t key_gen;        /* key set generation it was verified under */
  uint64_t lru;            /* last use tick; smallest is evicted */
  int64_t checked_mono_ms; /* last Redis lookup; 0 forces one */
  paseto_claims c;
} entry;

/* The claims as the cache keeps them: sized for what auth issues (sub,
 * tid and jti are UUIDs, role a word, iss and aud short names). */
#define SMALL_ID 37   /* a UUID and its NUL */
#define SMALL_NAME 65 /* iss, aud */
#define SMALL_ROLE 17
typedef struct small_claims {
  char iss[SMALL_NAME], aud[SMALL_NAME], role[SMALL_ROLE];
  char sub[SMALL_ID], tid[SMALL_ID], jti[SMALL_ID];
  bool has_iat, has_nbf, has_exp;
  int64_t iat_ms, nbf_ms, exp_ms;
} small_claims;

/* A cache slot: an entry with its claims compact. */
typedef struct slot {
  uint8_t h[AUTHN_HASHBYTES];
  bool used;
  uint8_t state;
  uint32_t key_gen;
  uint64_t lru;
  int64_t checked_mono_ms;
  small_claims c;
} slot;

typedef struct keyslot {
  char kid[PASETO_PID_LEN + 1];
  authn_key k;
} keyslot;

struct authn {
  authn_config cfg;
  char issuer[PASETO_CLAIM_STR_MAX + 1];

  pthread_rwlock_t keys_lock;
  keyslot keys[AUTHN_MAX_KEYS];
  size_t nkeys;
  bool have_keys;
  uint32_t key_gen;

  pthread_mutex_t fetch_lock;      /* one Keys RPC at a time */
  int64_t last_unknown_fetch_mono; /* under fetch_lock */

  slot *entries;
  size_t nsets;
  pthread_mutex_t stripes[AUTHN_STRIPES];
  uint64_t tick;        /* atomic */
  int64_t stale_before; /* atomic; authn_recheck_all (monotonic ms) */

  pthread_t thread;
  bool thread_started;
  pthread_mutex_t stop_mu;
  pthread_cond_t stop_cv;
  bool stopping;

  authn_stats st; /* updated atomically */
};

#define STAT_INC(a, f) __atomic_add_fetch(&(a)->st.f, 1, __ATOMIC_RELAXED)

static int64_t wall_now(const authn *a) {
  return a->cfg.now_ms != NULL ? a->cfg.now_ms() : time_now_ms();
}

/* ------------------------------------------------------------ results --- */

int authn_fail_mode_parse(const char *s, bool *fail_closed) {
  if (s == NULL || s[0] == '\0' || strcasecmp(s, "open") == 0) {
    *fail_closed = false;
    return ERR_OK;
  }
  if (strcasecmp(s, "closed") == 0) {
    *fail_closed = true;
    return ERR_OK;
  }
  return ERR_INVAL;
}

const char *authn_result_str(enum authn_result r) {
  switch (r) {
  case AUTHN_OK:
    return "ok";
  case AUTHN_MISSING:
    return "missing token";
  case AUTHN_MALFORMED:
    return "malformed token";
  case AUTHN_UNKNOWN_KEY:
    return "token signed by an unknown key";
  case AUTHN_BAD_SIGNATURE:
    return "invalid token signature";
  case AUTHN_BAD_CLAIMS:
    return "invalid token claims";
  case AUTHN_EXPIRED:
    return "token expired";
  case AUTHN_NOT_YET_VALID:
    return "token not yet valid";
  case AUTHN_REVOKED:
    return "token revoked";
  case AUTHN_TENANT_SUSPENDED:
    return "tenant suspended";
  case AUTHN_UNAVAILABLE:
    return "token verification unavailable";
  }
  return "invalid token";
}

int authn_result_code(enum authn_result r) {
  switch (r) {
  case AUTHN_OK:
    return RPC_OK;
  case AUTHN_TENANT_SUSPENDED:
    return RPC_PERMISSION_DENIED;
  case AUTHN_UNAVAILABLE:
    return RPC_UNAVAILABLE;
  default:
    return RPC_UNAUTHENTICATED;
  }
}

/* ---------------------------------------------------------------- keys --- */

static int find_key(authn *a, const char *kid, paseto_public_key *pk,
                    uint32_t *gen, bool *have_any) {
  int rc = ERR_NOTFOUND;
  pthread_rwlock_rdlock(&a->keys_lock);
  *have_any = a->have_keys;
  *gen = a->key_gen;
  for (size_t i = 0; i < a->nkeys; i++) {
    if (strcmp(a->keys[i].kid, kid) == 0) {
      *pk = a->keys[i].k.pk;
      rc = ERR_OK;
      break;
    }
  }
  pthread_rwlock_unlock(&a->keys_lock);
  return rc;
}

int authn_set_keys(authn *a, const authn_key *keys, size_t n) {
  if (a == NULL || (keys == NULL && n > 0)) return ERR_INVAL;
  if (n > AUTHN_MAX_KEYS) return ERR_TOOBIG;
  keyslot next[AUTHN_MAX_KEYS];
  for (size_t i = 0; i < n; i++) {
    next[i].k = keys[i];
    paseto_pid(&keys[i].pk, next[i].kid);
  }
  pthread_rwlock_wrlock(&a->keys_lock);
  /* A periodic refresh usually brings the same set: only a real change
   * bumps the generation (and so re-verifies cached tokens). */
  bool same = a->have_keys && a->nkeys == n;
  for (size_t i = 0; same && i < n; i++) {
    bool found = false;
    for (size_t j = 0; j < a->nkeys && !found; j++)
      found = strcmp(a->keys[j].kid, next[i].kid) == 0;
    same = found;
  }
  if (n > 0) memcpy(a->keys, next, n * sizeof next[0]);
  a->nkeys = n;
  a->have_keys = true;
  if (!same) a->key_gen++;
  pthread_rwlock_unlock(&a->keys_lock);
  return ERR_OK;
}

size_t authn_key_count(authn *a) {
  pthread_rwlock_rdlock(&a->keys_lock);
  size_t n = a->nkeys;
  pthread_rwlock_unlock(&a->keys_lock);
  return n;
}

/* Decodes and checks a Keys answer into out[0..*n). Any bad key refuses
 * the whole answer: a half-understood key set is worse than the old one. */
static int parse_keys(const uint8_t *payload, size_t len, authn_key *out,
                      size_t *n) {
  if (len > AUTHN_KEYS_REPLY_MAX) return ERR_PROTO;
  Auth__V1__KeysResponse *kr =
      auth__v1__keys_response__unpack(NULL, len, payload);
  if (kr == NULL) return ERR_PROTO;
  int rc = ERR_OK;
  size_t k = 0;
  for (size_t i = 0; i < kr->n_keys && rc == ERR_OK; i++) {
    const Auth__V1__PublicKey *pk = kr->keys[i];
    if (pk->alg == NULL || strcmp(pk->alg, "v4.public") != 0)
      continue; /* a future algorithm: not ours to use */
    if (k == AUTHN_MAX_KEYS) {
      rc = ERR_PROTO;
      break;
    }
    uint8_t raw[PASETO_PUBLICKEYBYTES + 1];
    size_t rawlen = 0;
    const char *b64 = pk->public_key != NULL ? pk->public_key : "";
    if (sodium_base642bin(raw, sizeof raw, b64, strlen(b64), NULL, &rawlen,
                          NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        paseto_public_key_from_bytes(raw, rawlen, &out[k].pk) != ERR_OK) {
      rc = ERR_PROTO;
      break;
    }
    char pid[PASETO_PID_LEN + 1];
    paseto_pid(&out[k].pk, pid);
    if (pk->kid == NULL || strcmp(pid, pk->kid) != 0) {
      rc = ERR_PROTO;
      break;
    }
    out[k].active = pk->status != NULL && strcmp(pk->status, "active") == 0;
    k++;
  }
  auth__v1__keys_response__free_unpacked(kr, NULL);
  if (rc == ERR_OK && k == 0)
    rc = ERR_PROTO; /* an empty set would refuse every token */
  *n = k;
  return rc;
}

/* The Keys RPC. Callers hold fetch_lock. */
static int fetch_keys_locked(authn *a) {
  STAT_INC(a, key_fetches);
  Auth__V1__KeysRequest req = AUTH__V1__KEYS_REQUEST__INIT;
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = a->cfg.keys_deadline_ms;
  o.idempotent = true;
  rpc_result *res = NULL;
  int rc = rpc_client_call_message(a->cfg.keys_client, AUTHN_KEYS_METHOD,
                                   &req.base, &o, &res);
  if (rc == ERR_OK && res->code != RPC_OK) rc = ERR_UNAVAILABLE;
  if (rc == ERR_OK) {
    authn_key keys[AUTHN_MAX_KEYS];
    size_t n = 0;
    rc = parse_keys(res->payload, res->payload_len, keys, &n);
    if (rc == ERR_OK) rc = authn_set_keys(a, keys, n);
  }
  rpc_result_free(res);
  if (rc != ERR_OK) STAT_INC(a, key_fetch_errors);
  return rc;
}

int authn_refresh_keys(authn *a) {
  if (a == NULL || a->cfg.keys_client == NULL) return ERR_INVAL;
  pthread_mutex_lock(&a->fetch_lock);
  int rc = fetch_keys_locked(a);
  pthread_mutex_unlock(&a->fetch_lock);
  return rc;
}

/* An unknown kid may be a key rotated in since the last refresh: fetch,
 * but at most once per unknown_kid_interval_ms across all threads. */
static void fetch_for_unknown_kid(authn *a) {
  if (a->cfg.keys_client == NULL) return;
  pthread_mutex_lock(&a->fetch_lock);
  int64_t now = time_mono_ms();
  if (a->last_unknown_fetch_mono == 0 ||
      now - a->last_unknown_fetch_mono >= a->cfg.unknown_kid_interval_ms) {
    a->last_unknown_fetch_mono = now;
    (void)fetch_keys_locked(a);
  }
  pthread_mutex_unlock(&a->fetch_lock);
}

static void *refresh_main(void *arg) {
  authn *a = arg;
  pthread_mutex_lock(&a->stop_mu);
  while (!a->stopping) {
    pthread_rwlock_rdlock(&a->keys_lock);
    bool have = a->have_keys;
    pthread_rwlock_unlock(&a->keys_lock);
    /* Without any key every token is refused: retry quickly until the
     * first fetch succeeds, then settle to the refresh period. */
    int64_t wait_ms = have ? a->cfg.keys_refresh_ms : 1000;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(wait_ms / 1000);
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    int w = 0;
    while (!a->stopping && w == 0)
      w = pthread_cond_timedwait(&a->stop_cv, &a->stop_mu, &ts);
    if (a->stopping) break;
    pthread_mutex_unlock(&a->stop_mu);
    int rc = authn_refresh_keys(a); /* failures are counted in the stats */
    (void)rc;
    pthread_mutex_lock(&a->stop_mu);
  }
  pthread_mutex_unlock(&a->stop_mu);
  return NULL;
}

/* --------------------------------------------------------------- cache --- */

static size_t set_of(const authn *a, const uint8_t h[AUTHN_HASHBYTES]) {
  uint64_t v;
  memcpy(&v, h, sizeof v);
  return (size_t)(v % a->nsets);
}

static pthread_mutex_t *stripe_of(authn *a, size_t set) {
  return &a->stripes[set % AUTHN_STRIPES];
}

static void cache_drop(authn *a, const uint8_t h[AUTHN_HASHBYTES]);

/* Copies src into a field of cap bytes; false when it does not fit. */
static bool fit(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (n >= cap) return false;
  memcpy(dst, src, n + 1);
  return true;
}

/* e's claims into s (false: one does not fit, e is not cached). */
static bool pack(const entry *e, slot *s) {
  memset(s, 0, sizeof *s);
  const paseto_claims *c = &e->c;
  small_claims *o = &s->c;
  if (!fit(o->iss, sizeof o->iss, c->iss) ||
      !fit(o->aud, sizeof o->aud, c->aud) ||
      !fit(o->role, sizeof o->role, c->role) ||
      !fit(o->sub, sizeof o->sub, c->sub) ||
      !fit(o->tid, sizeof o->tid, c->tid) ||
      !fit(o->jti, sizeof o->jti, c->jti))
    return false;
  o->has_iat = c->has_iat;
  o->has_nbf = c->has_nbf;
  o->has_exp = c->has_exp;
  o->iat_ms = c->iat_ms;
  o->nbf_ms = c->nbf_ms;
  o->exp_ms = c->exp_ms;
  memcpy(s->h, e->h, sizeof s->h);
  s->state = e->state;
  s->key_gen = e->key_gen;
  s->checked_mono_ms = e->checked_mono_ms;
  return true;
}

static void unpack(const slot *s, entry *e) {
  memset(e, 0, sizeof *e);
  memcpy(e->h, s->h, sizeof e->h);
  e->used = true;
  e->state = s->state;
  e->key_gen = s->key_gen;
  e->lru = s->lru;
  e->checked_mono_ms = s->checked_mono_ms;
  paseto_claims *c = &e->c;
  const small_claims *i = &s->c;
  memcpy(c->iss, i->iss, sizeof i->iss);
  memcpy(c->aud, i->aud, sizeof i->aud);
  memcpy(c->role, i->role, sizeof i->role);
  memcpy(c->sub, i->sub, sizeof i->sub);
  memcpy(c->tid, i->tid, sizeof i->tid);
  memcpy(c->jti, i->jti, sizeof i->jti);
  c->has_iat = i->has_iat;
  c->has_nbf = i->has_nbf;
  c->has_exp = i->has_exp;
  c->iat_ms = i->iat_ms;
  c->nbf_ms = i->nbf_ms;
  c->exp_ms = i->exp_ms;
}

/* Looks the hash up; on a hit copies the entry into *out. */
static bool cache_lookup(authn *a, const uint8_t h[AUTHN_HASHBYTES],
                         uint32_t key_gen, entry *out) {
  size_t set = set_of(a, h);
  slot *e = &a->entries[set * AUTHN_WAYS];
  bool hit = false;
  pthread_mutex_t *m = stripe_of(a, set);
  pthread_mutex_lock(m);
  for (int i = 0; i < AUTHN_WAYS; i++) {
    if (e[i].used && sodium_memcmp(e[i].h, h, AUTHN_HASHBYTES) == 0) {
      if (e[i].key_gen == key_gen) {
        e[i].lru = __atomic_add_fetch(&a->tick, 1, __ATOMIC_RELAXED);
        unpack(&e[i], out);
        hit = true;
      } else {
        e[i].used = false; /* verified under another key set */
      }
      break;
    }
  }
  pthread_mutex_unlock(m);
  return hit;
}

/* Inserts or refreshes an entry. A stored revocation is never undone.
 * Claims that do not fit a slot are not stored (and an older entry of the
 * same token is dropped, so nothing stale stays). */
static void cache_store(authn *a, const entry *in) {
  slot packed;
  if (!pack(in, &packed)) {
    cache_drop(a, in->h);
    return;
  }
  size_t set = set_of(a, in->h);
  slot *e = &a->entries[set * AUTHN_WAYS];
  pthread_mutex_t *m = stripe_of(a, set);
  pthread_mutex_lock(m);
  slot *to = NULL;
  for (int i = 0; i < AUTHN_WAYS && to == NULL; i++)
    if (e[i].used && sodium_memcmp(e[i].h, in->h, AUTHN_HASHBYTES) == 0)
      to = &e[i];
  uint8_t keep_state = ST_OK;
  if (to != NULL) {
    keep_state = to->state == ST_REVOKED ? ST_REVOKED : ST_OK;
  } else {
    for (int i = 0; i < AUTHN_WAYS && to == NULL; i++)
      if (!e[i].used) to = &e[i];
    if (to == NULL) {
      to = &e[0];
      for (int i = 1; i < AUTHN_WAYS; i++)
        if (e[i].lru < to->lru) to = &e[i];
      STAT_INC(a, evictions);
    }
  }
  *to = packed;
  to->used = true;
  if (keep_state == ST_REVOKED) to->state = ST_REVOKED;
  to->lru = __atomic_add_fetch(&a->tick, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(m);
}

static void cache_drop(authn *a, const uint8_t h[AUTHN_HASHBYTES]) {
  size_t set = set_of(a, h);
  slot *e = &a->entries[set * AUTHN_WAYS];
  pthread_mutex_t *m = stripe_of(a, set);
  pthread_mutex_lock(m);
  for (int i = 0; i < AUTHN_WAYS; i++)
    if (e[i].used && sodium_memcmp(e[i].h, h, AUTHN_HASHBYTES) == 0)
      e[i].used = false;
  pthread_mutex_unlock(m);
}

/* Visits every used entry under its stripe lock. */
static void cache_each(authn *a, void (*fn)(slot *e, const void *arg),
                       const void *arg) {
  for (size_t s = 0; s < AUTHN_STRIPES; s++) {
    pthread_mutex_lock(&a->stripes[s]);
    for (size_t set = s; set < a->nsets; set += AUTHN_STRIPES) {
      slot *e = &a->entries[set * AUTHN_WAYS];
      for (int i = 0; i < AUTHN_WAYS; i++)
        if (e[i].used) fn(&e[i], arg);
    }
    pthread_mutex_unlock(&a->stripes[s]);
  }
}

void authn_cache_clear(authn *a) {
  for (size_t s = 0; s < AUTHN_STRIPES; s++) {
    pthread_mutex_lock(&a->stripes[s]);
    for (size_t set = s; set < a->nsets; set += AUTHN_STRIPES)
      for (int i = 0; i < AUTHN_WAYS; i++)
        a->entries[set * AUTHN_WAYS + i].used = false;
    pthread_mutex_unlock(&a->stripes[s]);
  }
}

/* --------------------------------------------------------- revocations --- */

static void revoke_jti_fn(slot *e, const void *arg) {
  if (strcmp(e->c.jti, arg) == 0) e->state = ST_REVOKED;
}

void authn_revoke_jti(authn *a, const char *jti) {
  if (a == NULL || jti == NULL || jti[0] == '\0') return;
  cache_each(a, revoke_jti_fn, jti);
}

typedef struct user_rev {
  const char *user;
  int64_t at_s;
} user_rev;

/* iat is whole seconds and the revocation time is rounded up by auth, so
 * "issued before" is iat < R (see docs/tokens.md). */
static bool user_revoked(bool has_iat, int64_t iat_ms, int64_t revoked_at_s) {
  if (!has_iat) return true;
  int64_t iat_s = iat_ms / 1000;
  return iat_s < revoked_at_s;
}

static void revoke_user_fn(slot *e, const void *arg) {
  const user_rev *u = arg;
  if (strcmp(e->c.sub, u->user) == 0 &&
      user_revoked(e->c.has_iat, e->c.iat_ms, u->at_s))
    e->state = ST_REVOKED;
}

void authn_revoke_user(authn *a, const char *user_id, int64_t revoked_at_s) {
  if (a == NULL || user_id == NULL || user_id[0] == '\0') return;
  user_rev u = {user_id, revoked_at_s};
  cache_each(a, revoke_user_fn, &u);
}

static void tenant_changed_fn(slot *e, const void *arg) {
  if (strcmp(e->c.tid, arg) == 0) e->checked_mono_ms = 0;
}

void authn_tenant_changed(authn *a, const char *tenant_id) {
  if (a == NULL || tenant_id == NULL || tenant_id[0] == '\0') return;
  cache_each(a, tenant_changed_fn, tenant_id);
}

/* Applies ev as published on topic. */
static int apply(authn *a, const char *topic, const Rpc__V1__Event *ev) {
  if (strcmp(topic, AUTHN_TOPIC_TENANTS) == 0) {
    authn_tenant_changed(a, ev->tenant_id);
    return ERR_OK;
  }
  if (strcmp(topic, AUTHN_TOPIC_REVOKED) != 0) return ERR_OK;
  Auth__V1__Revoked *r =
      auth__v1__revoked__unpack(NULL, ev->payload.len, ev->payload.data);
  if (r == NULL) return ERR_PROTO;
  authn_revoke_jti(a, r->jti);
  authn_revoke_user(a, r->user_id, r->revoked_at_unix);
  auth__v1__revoked__free_unpacked(r, NULL);
  return ERR_OK;
}

int authn_handle_event(authn *a, const char *topic, const void *event,
                       size_t len) {
  if (a == NULL || topic == NULL || (event == NULL && len > 0))
    return ERR_INVAL;
  if (strcmp(topic, AUTHN_TOPIC_REVOKED) != 0 &&
      strcmp(topic, AUTHN_TOPIC_TENANTS) != 0)
    return ERR_OK;
  Rpc__V1__Event *ev = rpc__v1__event__unpack(NULL, len, event);
  if (ev == NULL) return ERR_PROTO;
  int rc = apply(a, topic, ev);
  rpc__v1__event__free_unpacked(ev, NULL);
  return rc;
}

int authn_apply_event(authn *a, const Rpc__V1__Event *ev) {
  if (a == NULL || ev == NULL || ev->topic == NULL) return ERR_INVAL;
  return apply(a, ev->topic, ev);
}

static int on_bus_event(void *arg, const Rpc__V1__Event *ev) {
  /* A bad payload is the publisher's problem: never hold the stream. */
  int rc = authn_apply_event(arg, ev);
  (void)rc;
  return ERR_OK;
}

int authn_subscribe(authn *a, const char *address, bus_subscriber **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (a == NULL || address == NULL) return ERR_INVAL;
  bus_subscriber_options o;
  bus_subscriber_options_init(&o);
  bus_subscriber *s = NULL;
  int rc = bus_subscriber_new(address, on_bus_event, a, &o, &s);
  if (rc == ERR_OK) rc = bus_subscribe_exact(s, AUTHN_TOPIC_REVOKED);
  if (rc == ERR_OK) rc = bus_subscribe_exact(s, AUTHN_TOPIC_TENANTS);
  if (rc == ERR_OK) rc = bus_subscriber_start(s);
  if (rc != ERR_OK) {
    bus_subscriber_free(s);
    return rc;
  }
  *out = s;
  return ERR_OK;
}

/* The keys of c's state, in MGET order: jti, user, tenant. */
static void state_keys(const paseto_claims *c, char kj[AUTHN_KEY_MAX],
                       char ku[AUTHN_KEY_MAX], char kt[AUTHN_KEY_MAX]) {
  snprintf(kj, AUTHN_KEY_MAX, "revoked:jti:%s", c->jti);
  snprintf(ku, AUTHN_KEY_MAX, "revoked:user:%s", c->sub);
  snprintf(kt, AUTHN_KEY_MAX, "tenant:status:%s", c->tid);
}

/* c's state from the MGET replies of its three keys. */
static uint8_t state_of(const paseto_claims *c, const cache_reply *rj,
                        const cache_reply *ru, const cache_reply *rt) {
  if (cache_reply_type(rj) == CACHE_REPLY_STRING) return ST_REVOKED;
  if (cache_reply_type(ru) == CACHE_REPLY_STRING) {
    int64_t at = 0;
    /* An unreadable value still means "this user was revoked". */
    if (cache_reply_int(ru, &at) != ERR_OK ||
        user_revoked(c->has_iat, c->iat_ms, at))
      return ST_REVOKED;
  }
  if (cache_reply_type(rt) == CACHE_REPLY_STRING) {
    const char *s = NULL;
    size_t n = 0;
    if (cache_reply_str(rt, &s, &n) == ERR_OK && n == 9 &&
        memcmp(s, "suspended", 9) == 0)
      return ST_SUSPENDED;
  }
  return ST_OK;
}

/* One MGET of argc arguments ("MGET" and 3 keys per token) whose reply
 * must hold argc - 1 values. *out is the caller's. */
static int mget(authn *a, int argc, const char *const *argv,
                cache_reply **out) {
  STAT_INC(a, redis_checks);
  int rc = cache_command(a->cfg.redis, true, argc, argv, NULL, out);
  if (rc == ERR_OK && (cache_reply_type(*out) != CACHE_REPLY_ARRAY ||
                       cache_reply_len(*out) != (size_t)argc - 1))
    rc = ERR_PROTO;
  if (rc != ERR_OK) {
    STAT_INC(a, redis_errors);
    cache_reply_free(*out);
    *out = NULL;
  }
  return rc;
}

/* One MGET for the token's jti, user and tenant. On success sets
 * *state. Redis being absent counts as "nothing revoked". */
static int redis_state(authn *a, const paseto_claims *c, uint8_t *state) {
  *state = ST_OK;
  if (a->cfg.redis == NULL) return ERR_OK;
  char kj[AUTHN_KEY_MAX], ku[AUTHN_KEY_MAX], kt[AUTHN_KEY_MAX];
  state_keys(c, kj, ku, kt);
  const char *argv[] = {"MGET", kj, ku, kt};
  cache_reply *r = NULL;
  int rc = mget(a, 4, argv, &r);
  if (rc != ERR_OK) return rc;
  *state = state_of(c, cache_reply_at(r, 0), cache_reply_at(r, 1),
                    cache_reply_at(r, 2));
  cache_reply_free(r);
  return ERR_OK;
}

/* Is e's revocation/tenant state older than recheck_ms, or read at or
 * before the last authn_recheck_all? (checked_mono_ms is taken before
 * the lookup, so a lookup in flight at that call counts as before it.) */
static bool state_due(const authn *a, const entry *e, int64_t now) {
  int64_t stale = __atomic_load_n(&a->stale_before, __ATOMIC_ACQUIRE);
  return e->state != ST_REVOKED &&
         (e->checked_mono_ms == 0 || e->checked_mono_ms <= stale ||
          now - e->checked_mono_ms >= a->cfg.recheck_ms);
}

void authn_recheck_all(authn *a) {
  if (a == NULL) return;
  __atomic_store_n(&a->stale_before, time_mono_ms(), __ATOMIC_RELEASE);
}

/* Stores the outcome of a lookup made at now (rc, and st when rc is OK).
 * Also after a failure: the next try is recheck_ms away, so a Redis
 * outage costs one failed lookup per token per period, not per call.
 * ERR_UNAVAILABLE only when the lookup failed and fail_closed. */
static int store_state(authn *a, entry *e, int64_t now, int rc, uint8_t st) {
  e->checked_mono_ms = now;
  if (rc == ERR_OK) e->state = st;
  cache_store(a, e);
  return rc != ERR_OK && a->cfg.fail_closed ? ERR_UNAVAILABLE : ERR_OK;
}

/* Brings e's state up to date when its last lookup is older than
 * recheck_ms, storing the result. ERR_UNAVAILABLE only when fail_closed. */
static int refresh_state(authn *a, entry *e) {
  int64_t now = time_mono_ms();
  if (!state_due(a, e, now)) return ERR_OK;
  uint8_t st = ST_OK;
  int rc = redis_state(a, &e->c, &st);
  return store_state(a, e, now, rc, st);
}

/* -------------------------------------------------------------- verify --- */

static enum authn_result time_result(const char *why) {
  if (why != NULL && strcmp(why, "token expired") == 0) return AUTHN_EXPIRED;
  if (why != NULL && (strcmp(why, "token not yet valid") == 0 ||
                      strcmp(why, "token issued in the future") == 0))
    return AUTHN_NOT_YET_VALID;
  return AUTHN_BAD_CLAIMS;
}

static int check_time(authn *a, const paseto_claims *c,
                      enum authn_result *res) {
  const char *why = NULL;
  if (paseto_claims_check_time(c, wall_now(a), a->cfg.leeway_ms,
                               PASETO_CLAIMS_REQUIRE_EXP, &why) != ERR_OK) {
    *res = time_result(why);
    return ERR_INVAL;
  }
  return ERR_OK;
}

/* The full verification of a token not in the cache. Fills e (hash set
 * by the caller). */
static int verify_fresh(authn *a, const char *token, size_t len, entry *e,
                        enum authn_result *res, bool may_fetch) {
  char kid[PASETO_PID_LEN + 1];
  if (paseto_token_kid(token, len, kid, NULL) != ERR_OK) {
    *res = AUTHN_MALFORMED;
    return ERR_INVAL;
  }
  paseto_public_key pk;
  uint32_t gen = 0;
  bool have_any = false;
  if (find_key(a, kid, &pk, &gen, &have_any) != ERR_OK) {
    if (may_fetch) fetch_for_unknown_kid(a);
    if (!may_fetch || find_key(a, kid, &pk, &gen, &have_any) != ERR_OK) {
      *res = have_any ? AUTHN_UNKNOWN_KEY : AUTHN_UNAVAILABLE;
      return have_any ? ERR_INVAL : ERR_UNAVAILABLE;
    }
  }
  paseto_token *t = NULL;
  int rc = paseto_verify(&pk, token, len, NULL, 0, NULL, 0, &t, NULL);
  if (rc == ERR_NOMEM) return rc;
  if (rc != ERR_OK) {
    *res = rc == ERR_TOOBIG ? AUTHN_MALFORMED : AUTHN_BAD_SIGNATURE;
    return ERR_INVAL;
  }
  STAT_INC(a, misses);
  rc = paseto_claims_from_json(t->payload, t->payload_len, &e->c, NULL);
  paseto_token_free(t);
  if (rc != ERR_OK || e->c.sub[0] == '\0' || e->c.tid[0] == '\0' ||
      e->c.jti[0] == '\0' || !e->c.has_exp ||
      (a->issuer[0] != '\0' && strcmp(e->c.iss, a->issuer) != 0)) {
    *res = AUTHN_BAD_CLAIMS;
    return ERR_INVAL;
  }
  e->key_gen = gen;
  e->state = ST_OK;
  e->checked_mono_ms = 0;
  return ERR_OK;
}

/* The cache entry of token, or a fresh verification (a Keys fetch for an
 * unknown kid only when may_fetch), then the time claims. */
static int verify_signed(authn *a, const char *token, size_t len,
                         bool may_fetch, entry *e, enum authn_result *res) {
  if (token == NULL || len == 0) {
    *res = AUTHN_MISSING;
    return ERR_INVAL;
  }
  if (len > PASETO_TOKEN_MAX) {
    *res = AUTHN_MALFORMED;
    return ERR_INVAL;
  }
  memset(e, 0, sizeof *e);
  crypto_generichash(e->h, sizeof e->h, (const unsigned char *)token, len, NULL,
                     0);
  pthread_rwlock_rdlock(&a->keys_lock);
  uint32_t gen = a->key_gen;
  pthread_rwlock_unlock(&a->keys_lock);
  if (cache_lookup(a, e->h, gen, e)) {
    STAT_INC(a, hits);
  } else {
    uint8_t h[AUTHN_HASHBYTES];
    memcpy(h, e->h, sizeof h);
    memset(e, 0, sizeof *e);
    memcpy(e->h, h, sizeof h);
    int rc = verify_fresh(a, token, len, e, res, may_fetch);
    if (rc != ERR_OK) return rc;
  }
  /* Time first: an expired token is refused without a Redis lookup, and
   * its entry is dropped to make room. */
  int rc = check_time(a, &e->c, res);
  if (rc != ERR_OK && *res == AUTHN_EXPIRED) cache_drop(a, e->h);
  return rc;
}

/* authn_verify's answer for e once its state is known. */
static int result_of(const entry *e, paseto_claims *claims,
                     enum authn_result *res) {
  if (e->state == ST_REVOKED) {
    *res = AUTHN_REVOKED;
    return ERR_INVAL;
  }
  if (e->state == ST_SUSPENDED) {
    *res = AUTHN_TENANT_SUSPENDED;
    return ERR_INVAL;
  }
  if (claims != NULL) *claims = e->c;
  return ERR_OK;
}

int authn_verify(authn *a, const char *token, size_t len, paseto_claims *claims,
                 enum authn_result *why) {
  enum authn_result res_local = AUTHN_OK;
  enum authn_result *res = why != NULL ? why : &res_local;
  *res = AUTHN_OK;
  if (a == NULL) return ERR_INVAL;
  entry e;
  int rc = verify_signed(a, token, len, true, &e, res);
  if (rc == ERR_OK) rc = refresh_state(a, &e);
  if (rc == ERR_UNAVAILABLE && *res == AUTHN_OK) *res = AUTHN_UNAVAILABLE;
  if (rc == ERR_OK) rc = result_of(&e, claims, res);
  if (rc == ERR_INVAL) STAT_INC(a, refused);
  return rc;
}

/* The lookups of the due entries e[due[0..n)], as one MGET; stores
 * each outcome and sets rcs[] for a failure under fail_closed. */
static int batch_lookup(authn *a, entry *e, const size_t *due, size_t n,
                        int *rcs, int64_t now) {
  char(*keys)[AUTHN_KEY_MAX] = malloc(3 * n * sizeof *keys);
  const char **argv = malloc((1 + 3 * n) * sizeof *argv);
  if (keys == NULL || argv == NULL) {
    free(keys);
    free(argv);
    return ERR_NOMEM;
  }
  argv[0] = "MGET";
  for (size_t i = 0; i < n; i++) {
    state_keys(&e[due[i]].c, keys[3 * i], keys[3 * i + 1], keys[3 * i + 2]);
    for (size_t k = 0; k < 3; k++) argv[1 + 3 * i + k] = keys[3 * i + k];
  }
  cache_reply *r = NULL;
  int rc = a->cfg.redis == NULL ? ERR_OK : mget(a, (int)(1 + 3 * n), argv, &r);
  for (size_t i = 0; i < n; i++) {
    entry *x = &e[due[i]];
    uint8_t st = r == NULL ? ST_OK
                           : state_of(&x->c, cache_reply_at(r, 3 * i),
                                      cache_reply_at(r, 3 * i + 1),
                                      cache_reply_at(r, 3 * i + 2));
    if (store_state(a, x, now, rc, st) != ERR_OK) rcs[due[i]] = ERR_UNAVAILABLE;
  }
  cache_reply_free(r);
  free(keys);
  free(argv);
  return ERR_OK;
}

int authn_verify_batch(authn *a, const char *const *tokens, const size_t *lens,
                       size_t n, int *rcs, enum authn_result *why) {
  if (a == NULL || n > AUTHN_BATCH_MAX ||
      (n > 0 && (tokens == NULL || lens == NULL || rcs == NULL || why == NULL)))
    return ERR_INVAL;
  if (n == 0) return ERR_OK;
  entry *e = malloc(n * sizeof *e);
  size_t *due = malloc(n * sizeof *due), ndue = 0;
  if (e == NULL || due == NULL) {
    free(e);
    free(due);
    return ERR_NOMEM;
  }
  int64_t now = time_mono_ms();
  for (size_t i = 0; i < n; i++) {
    why[i] = AUTHN_OK;
    rcs[i] = verify_signed(a, tokens[i], lens[i], true, &e[i], &why[i]);
    if (rcs[i] == ERR_OK && state_due(a, &e[i], now)) due[ndue++] = i;
  }
  int rc = ndue > 0 ? batch_lookup(a, e, due, ndue, rcs, now) : ERR_OK;
  for (size_t i = 0; rc == ERR_OK && i < n; i++) {
    if (rcs[i] == ERR_UNAVAILABLE && why[i] == AUTHN_OK)
      why[i] = AUTHN_UNAVAILABLE;
    if (rcs[i] == ERR_OK) rcs[i] = result_of(&e[i], NULL, &why[i]);
    if (rcs[i] == ERR_INVAL) STAT_INC(a, refused);
  }
  free(e);
  free(due);
  return rc;
}

int authn_verify_offline(authn *a, const char *token, size_t len,
                         enum authn_result *why) {
  enum authn_result res_local = AUTHN_OK;
  enum authn_result *res = why != NULL ? why : &res_local;
  *res = AUTHN_OK;
  if (a == NULL) return ERR_INVAL;
  entry e;
  int rc = verify_signed(a, token, len, false, &e, res);
  if (rc == ERR_OK && e.state == ST_REVOKED) {
    *res = AUTHN_REVOKED; /* known already: revocations only tighten */
    rc = ERR_INVAL;
  } else if (rc == ERR_OK && e.checked_mono_ms == 0) {
    cache_store(a, &e); /* the full verification finds it */
  }
  if (rc == ERR_INVAL) STAT_INC(a, refused);
  return rc;
}

/* ------------------------------------------------------------ lifecycle --- */

int authn_new(const authn_config *cfg, authn **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (cfg == NULL) return ERR_INVAL;
  if (sodium_init() < 0) return ERR_INTERNAL;
  if (cfg->issuer != NULL && strlen(cfg->issuer) > PASETO_CLAIM_STR_MAX)
    return ERR_INVAL;
  if (cfg->cache_entries > AUTHN_MAX_ENTRIES) return ERR_INVAL;
  authn *a = calloc(1, sizeof *a);
  if (a == NULL) return ERR_NOMEM;
  a->cfg = *cfg;
  a->cfg.issuer = NULL;
  if (cfg->issuer != NULL) str_copy(a->issuer, cfg->issuer, sizeof a->issuer);
  if (a->cfg.leeway_ms < 0) a->cfg.leeway_ms = 30000;
  if (a->cfg.recheck_ms <= 0) a->cfg.recheck_ms = 500;
  if (a->cfg.keys_refresh_ms <= 0) a->cfg.keys_refresh_ms = 60000;
  if (a->cfg.unknown_kid_interval_ms <= 0)
    a->cfg.unknown_kid_interval_ms = 1000;
  if (a->cfg.keys_deadline_ms == 0) a->cfg.keys_deadline_ms = 2000;
  size_t n = cfg->cache_entries == 0 ? 8192 : cfg->cache_entries;
  a->nsets = (n + AUTHN_WAYS - 1) / AUTHN_WAYS;
  a->entries = calloc(a->nsets * AUTHN_WAYS, sizeof *a->entries);
  if (a->entries == NULL) {
    free(a);
    return ERR_NOMEM;
  }
  pthread_rwlock_init(&a->keys_lock, NULL);
  pthread_mutex_init(&a->fetch_lock, NULL);
  for (size_t i = 0; i < AUTHN_STRIPES; i++)
    pthread_mutex_init(&a->stripes[i], NULL);
  pthread_mutex_init(&a->stop_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&a->stop_cv, &ca);
  pthread_condattr_destroy(&ca);

  if (a->cfg.keys_client != NULL) {
    int rc = authn_refresh_keys(a); /* best effort: the thread retries */
    (void)rc;
    if (pthread_create(&a->thread, NULL, refresh_main, a) != 0) {
      authn_free(a);
      return ERR_INTERNAL;
    }
    a->thread_started = true;
  }
  *out = a;
  return ERR_OK;
}

void authn_free(authn *a) {
  if (a == NULL) return;
  if (a->thread_started) {
    pthread_mutex_lock(&a->stop_mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->stop_cv);
    pthread_mutex_unlock(&a->stop_mu);
    pthread_join(a->thread, NULL);
  }
  pthread_cond_destroy(&a->stop_cv);
  pthread_mutex_destroy(&a->stop_mu);
  for (size_t i = 0; i < AUTHN_STRIPES; i++)
    pthread_mutex_destroy(&a->stripes[i]);
  pthread_mutex_destroy(&a->fetch_lock);
  pthread_rwlock_destroy(&a->keys_lock);
  free(a->entries);
  free(a);
}

void authn_get_stats(authn *a, authn_stats *out) {
  out->hits = __atomic_load_n(&a->st.hits, __ATOMIC_RELAXED);
  out->misses = __atomic_load_n(&a->st.misses, __ATOMIC_RELAXED);
  out->refused = __atomic_load_n(&a->st.refused, __ATOMIC_RELAXED);
  out->evictions = __atomic_load_n(&a->st.evictions, __ATOMIC_RELAXED);
  out->redis_checks = __atomic_load_n(&a->st.redis_checks, __ATOMIC_RELAXED);
  out->redis_errors = __atomic_load_n(&a->st.redis_errors, __ATOMIC_RELAXED);
  out->key_fetches = __atomic_load_n(&a->st.key_fetches, __ATOMIC_RELAXED);
  out->key_fetch_errors =
      __atomic_load_n(&a->st.key_fetch_errors, __ATOMIC_RELAXED);
}
