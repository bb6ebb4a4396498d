/*
 * svcid.c - see svcid.h.
 *
 * Three small parts: the trust bundle (a flat array of (service, key,
 * kid), searched linearly: a cluster has a handful of services), the
 * signer (one cached token per audience under a mutex, re-minted at half
 * life), and the verifier (a direct-mapped cache of verified tokens keyed
 * by BLAKE2b-256, under a mutex; a miss verifies the signature and the
 * claims, then fills the slot). A refused token is never cached, so a
 * flood of forgeries costs the sender as much as the verifier and cannot
 * push good entries out.
 */
#include "libs/svcid/svcid.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/paseto/claims.h"

#define CACHE_SLOTS 64 /* distinct tokens alive at once: callers x replicas */
#define MAX_AUDIENCES 16

bool svcid_name_ok(const char *s) {
  if (s == NULL || s[0] < 'a' || s[0] > 'z') return false;
  size_t n = 0;
  for (; s[n] != '\0'; n++) {
    char c = s[n];
    if (n >= SVCID_NAME_MAX) return false;
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
  }
  return true;
}

/* ---- file reading ----------------------------------------------------- */

/* Reads at most max bytes of path into a new NUL-terminated buffer. */
static int read_small_file(const char *path, size_t max, char **out,
                           size_t *len) {
  *out = NULL;
  FILE *f = fopen(path, "re");
  if (f == NULL) return ERR_IO;
  char *buf = malloc(max + 2);
  if (buf == NULL) {
    fclose(f);
    return ERR_NOMEM;
  }
  size_t n = fread(buf, 1, max + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || n > max) {
    sodium_memzero(buf, max + 2);
    free(buf);
    return bad ? ERR_IO : ERR_TOOBIG;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return ERR_OK;
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ---- bundle ----------------------------------------------------------- */

typedef struct bundle_key {
  char service[SVCID_NAME_MAX + 1];
  char kid[PASETO_PID_LEN + 1];
  paseto_public_key pk;
} bundle_key;

struct svcid_bundle {
  size_t n;
  bundle_key keys[SVCID_BUNDLE_MAX];
};

static int parse_public(const char *s, size_t len, paseto_public_key *pk) {
  if (len == PASETO_PASERK_PUBLIC_LEN)
    return paseto_paserk_public_parse(s, len, pk);
  return paseto_public_key_from_hex(s, len, pk);
}

/* One "<service> <key>" line (already trimmed, not a comment). */
static int parse_bundle_line(svcid_bundle *b, const char *line, size_t len) {
  size_t sp = 0;
  while (sp < len && !is_space(line[sp])) sp++;
  size_t k = sp;
  while (k < len && is_space(line[k])) k++;
  if (sp == 0 || sp > SVCID_NAME_MAX || k == len) return ERR_INVAL;
  if (b->n >= SVCID_BUNDLE_MAX) return ERR_TOOBIG;
  bundle_key *e = &b->keys[b->n];
  memcpy(e->service, line, sp);
  e->service[sp] = '\0';
  if (!svcid_name_ok(e->service)) return ERR_INVAL;
  if (parse_public(line + k, len - k, &e->pk) != ERR_OK) return ERR_INVAL;
  paseto_pid(&e->pk, e->kid);
  for (size_t i = 0; i < b->n; i++)
    if (strcmp(b->keys[i].kid, e->kid) == 0) return ERR_INVAL; /* twice */
  b->n++;
  return ERR_OK;
}

int svcid_bundle_parse(const char *text, size_t len, svcid_bundle **out,
                       int *bad_line) {
  if (out == NULL || (text == NULL && len > 0)) return ERR_INVAL;
  *out = NULL;
  svcid_bundle *b = calloc(1, sizeof *b);
  if (b == NULL) return ERR_NOMEM;
  int line_no = 0;
  size_t i = 0;
  while (i < len) {
    size_t end = i;
    while (end < len && text[end] != '\n') end++;
    line_no++;
    size_t s = i, e = end;
    while (s < e && is_space(text[s])) s++;
    while (e > s && is_space(text[e - 1])) e--;
    if (e > s && text[s] != '#') {
      int rc = parse_bundle_line(b, text + s, e - s);
      if (rc != ERR_OK) {
        if (bad_line != NULL) *bad_line = line_no;
        free(b);
        return rc;
      }
    }
    i = end + 1;
  }
  *out = b;
  return ERR_OK;
}

int svcid_bundle_load(const char *path, svcid_bundle **out, int *bad_line) {
  if (path == NULL || out == NULL) return ERR_INVAL;
  char *text;
  size_t len;
  int rc = read_small_file(path, SVCID_BUNDLE_FILE_MAX, &text, &len);
  if (rc != ERR_OK) return rc;
  rc = svcid_bundle_parse(text, len, out, bad_line);
  free(text);
  return rc;
}

size_t svcid_bundle_count(const svcid_bundle *b) { return b ? b->n : 0; }

static const bundle_key *bundle_find(const svcid_bundle *b, const char *kid) {
  for (size_t i = 0; i < b->n; i++)
    if (strcmp(b->keys[i].kid, kid) == 0) return &b->keys[i];
  return NULL;
}

const char *svcid_bundle_service_of(const svcid_bundle *b, const char *kid) {
  if (b == NULL || kid == NULL) return NULL;
  const bundle_key *k = bundle_find(b, kid);
  return k ? k->service : NULL;
}

void svcid_bundle_free(svcid_bundle *b) { free(b); }

/* ---- signer ----------------------------------------------------------- */

typedef struct minted {
  char audience[SVCID_NAME_MAX + 1];
  char token[SVCID_TOKEN_MAX + 1];
  int64_t renew_at_ms; /* half its life */
} minted;

struct svcid_signer {
  char name[SVCID_NAME_MAX + 1];
  char kid[PASETO_PID_LEN + 1];
  paseto_secret_key sk;
  pthread_mutex_t mu;
  minted cache[MAX_AUDIENCES];
  size_t ncache;
};

int svcid_signer_new(const char *name, const paseto_secret_key *sk,
                     svcid_signer **out) {
  if (out == NULL || sk == NULL || !svcid_name_ok(name)) return ERR_INVAL;
  *out = NULL;
  if (paseto_init() != ERR_OK) return ERR_INTERNAL;
  svcid_signer *s = calloc(1, sizeof *s);
  if (s == NULL) return ERR_NOMEM;
  str_copy(s->name, name, sizeof s->name);
  s->sk = *sk;
  paseto_public_key pk;
  paseto_public_key_of(sk, &pk);
  paseto_pid(&pk, s->kid);
  pthread_mutex_init(&s->mu, NULL);
  *out = s;
  return ERR_OK;
}

static int parse_secret(const char *s, size_t len, paseto_secret_key *sk) {
  if (len == PASETO_PASERK_SECRET_LEN)
    return paseto_paserk_secret_parse(s, len, sk);
  return paseto_secret_key_from_hex(s, len, sk);
}

int svcid_signer_load(const char *name, const char *path, svcid_signer **out) {
  if (path == NULL || out == NULL) return ERR_INVAL;
  *out = NULL;
  char *text;
  size_t len;
  int rc = read_small_file(path, 1024, &text, &len);
  if (rc != ERR_OK) return rc;
  size_t s = 0, e = len;
  while (s < e && is_space(text[s])) s++;
  while (e > s && is_space(text[e - 1])) e--;
  paseto_secret_key sk;
  rc = parse_secret(text + s, e - s, &sk);
  sodium_memzero(text, len);
  free(text);
  if (rc == ERR_OK) rc = svcid_signer_new(name, &sk, out);
  paseto_secret_key_wipe(&sk);
  return rc;
}

const char *svcid_signer_name(const svcid_signer *s) { return s->name; }
const char *svcid_signer_kid(const svcid_signer *s) { return s->kid; }

int svcid_signer_mint(svcid_signer *s, const char *audience, int64_t now_ms,
                      int64_t ttl_ms, char *out, size_t cap) {
  if (s == NULL || out == NULL || !svcid_name_ok(audience)) return ERR_INVAL;
  paseto_claims c;
  memset(&c, 0, sizeof c);
  str_copy(c.iss, s->name, sizeof c.iss);
  str_copy(c.sub, s->name, sizeof c.sub);
  str_copy(c.aud, audience, sizeof c.aud);
  c.has_iat = c.has_nbf = c.has_exp = true;
  c.iat_ms = c.nbf_ms = now_ms;
  c.exp_ms = now_ms + ttl_ms;
  char *json = NULL;
  size_t json_len = 0;
  int rc = paseto_claims_to_json(&c, &json, &json_len);
  if (rc != ERR_OK) return rc;
  char footer[PASETO_KID_FOOTER_MAX];
  size_t footer_len = 0;
  rc = paseto_footer_kid_json(s->kid, footer, sizeof footer, &footer_len);
  if (rc == ERR_OK)
    rc = paseto_sign(&s->sk, json, json_len, footer, footer_len,
                     SVCID_ASSERTION, strlen(SVCID_ASSERTION), out, cap, NULL);
  free(json);
  return rc;
}

/* The cache row for audience, or a new one (the oldest is reused when
 * the table is full). Called with the mutex held. */
static minted *signer_slot(svcid_signer *s, const char *audience) {
  for (size_t i = 0; i < s->ncache; i++)
    if (strcmp(s->cache[i].audience, audience) == 0) return &s->cache[i];
  minted *m;
  if (s->ncache < MAX_AUDIENCES) {
    m = &s->cache[s->ncache++];
  } else {
    m = &s->cache[0];
    for (size_t i = 1; i < MAX_AUDIENCES; i++)
      if (s->cache[i].renew_at_ms < m->renew_at_ms) m = &s->cache[i];
  }
  memset(m, 0, sizeof *m);
  str_copy(m->audience, audience, sizeof m->audience);
  return m;
}

int svcid_signer_token(svcid_signer *s, const char *audience, char *out,
                       size_t cap) {
  if (s == NULL || out == NULL || !svcid_name_ok(audience)) return ERR_INVAL;
  if (cap < SVCID_TOKEN_MAX + 1) return ERR_TOOBIG;
  int64_t now = time_now_ms();
  int rc = ERR_OK;
  pthread_mutex_lock(&s->mu);
  minted *m = signer_slot(s, audience);
  if (m->token[0] == '\0' || now >= m->renew_at_ms) {
    rc = svcid_signer_mint(s, audience, now, SVCID_TTL_MS, m->token,
                           sizeof m->token);
    m->renew_at_ms = rc == ERR_OK ? now + SVCID_TTL_MS / 2 : 0;
    if (rc != ERR_OK) m->token[0] = '\0';
  }
  if (rc == ERR_OK) str_copy(out, m->token, cap);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int svcid_method_service(const char *method, char out[SVCID_NAME_MAX + 1]) {
  if (method == NULL) return ERR_INVAL;
  size_t n = strcspn(method, "./");
  if (n == 0 || n > SVCID_NAME_MAX || method[n] != '.') return ERR_INVAL;
  memcpy(out, method, n);
  out[n] = '\0';
  return svcid_name_ok(out) ? ERR_OK : ERR_INVAL;
}

int svcid_credential(void *arg, const char *method, char *buf, size_t cap) {
  char audience[SVCID_NAME_MAX + 1];
  int rc = svcid_method_service(method, audience);
  if (rc != ERR_OK) return rc;
  return svcid_signer_token(arg, audience, buf, cap);
}

void svcid_signer_free(svcid_signer *s) {
  if (s == NULL) return;
  pthread_mutex_destroy(&s->mu);
  sodium_memzero(s, sizeof *s);
  free(s);
}

/* ---- verifier --------------------------------------------------------- */

typedef struct verified {
  uint8_t h[32];
  int64_t exp_ms;
  char caller[SVCID_NAME_MAX + 1];
} verified;

struct svcid_verifier {
  char self[SVCID_NAME_MAX + 1];
  svcid_bundle *bundle;
  pthread_mutex_t mu;
  verified cache[CACHE_SLOTS];
};

int svcid_verifier_new(const char *self, svcid_bundle *bundle,
                       svcid_verifier **out) {
  if (out != NULL) *out = NULL;
  if (out == NULL || bundle == NULL || !svcid_name_ok(self)) {
    svcid_bundle_free(bundle);
    return ERR_INVAL;
  }
  svcid_verifier *v = calloc(1, sizeof *v);
  if (v == NULL || paseto_init() != ERR_OK) {
    free(v);
    svcid_bundle_free(bundle);
    return v == NULL ? ERR_NOMEM : ERR_INTERNAL;
  }
  str_copy(v->self, self, sizeof v->self);
  v->bundle = bundle;
  pthread_mutex_init(&v->mu, NULL);
  *out = v;
  return ERR_OK;
}

static int refuse(const char **why, const char *reason) {
  if (why != NULL) *why = reason;
  return ERR_INVAL;
}

/* The claims rules once the signature holds (see svcid.h). */
static int check_claims(const svcid_verifier *v, const bundle_key *k,
                        const paseto_claims *c, int64_t now_ms,
                        const char **why) {
  if (strcmp(c->iss, k->service) != 0 || strcmp(c->sub, k->service) != 0)
    return refuse(why, "service token names another service than its key");
  if (strcmp(c->aud, v->self) != 0)
    return refuse(why, "service token for another service");
  if (!c->has_exp || !c->has_iat)
    return refuse(why, "service token without iat or exp");
  if (c->exp_ms - c->iat_ms > SVCID_MAX_TTL_MS)
    return refuse(why, "service token lives too long");
  return paseto_claims_check_time(c, now_ms, SVCID_LEEWAY_MS,
                                  PASETO_CLAIMS_REQUIRE_EXP, why);
}

/* Verifies without the cache; *exp_ms gets the token's expiry. */
static int verify_fully(svcid_verifier *v, const char *token, size_t len,
                        int64_t now_ms, char caller[SVCID_NAME_MAX + 1],
                        int64_t *exp_ms, const char **why) {
  char kid[PASETO_PID_LEN + 1];
  if (paseto_token_kid(token, len, kid, NULL) != ERR_OK)
    return refuse(why, "malformed service token");
  const bundle_key *k = bundle_find(v->bundle, kid);
  if (k == NULL) return refuse(why, "unknown service key");
  paseto_token *t = NULL;
  int rc = paseto_verify(&k->pk, token, len, NULL, 0, SVCID_ASSERTION,
                         strlen(SVCID_ASSERTION), &t, NULL);
  if (rc == ERR_NOMEM) return rc;
  if (rc != ERR_OK) return refuse(why, "bad service token signature");
  paseto_claims c;
  rc = paseto_claims_from_json(t->payload, t->payload_len, &c, NULL);
  paseto_token_free(t);
  if (rc != ERR_OK) return refuse(why, "malformed service token claims");
  rc = check_claims(v, k, &c, now_ms, why);
  if (rc != ERR_OK) return rc;
  str_copy(caller, k->service, SVCID_NAME_MAX + 1);
  *exp_ms = c.exp_ms;
  return ERR_OK;
}

int svcid_verify_at(svcid_verifier *v, const char *token, size_t len,
                    int64_t now_ms, char caller[SVCID_NAME_MAX + 1],
                    const char **why) {
  if (v == NULL || caller == NULL) return ERR_INVAL;
  caller[0] = '\0';
  if (token == NULL || len == 0) return refuse(why, "missing service token");
  if (len > SVCID_TOKEN_MAX) return refuse(why, "service token too long");
  int64_t exp_ms;
  return verify_fully(v, token, len, now_ms, caller, &exp_ms, why);
}

int svcid_verify(svcid_verifier *v, const char *token, size_t len,
                 char caller[SVCID_NAME_MAX + 1], const char **why) {
  if (v == NULL || caller == NULL) return ERR_INVAL;
  caller[0] = '\0';
  if (token == NULL || len == 0) return refuse(why, "missing service token");
  if (len > SVCID_TOKEN_MAX) return refuse(why, "service token too long");
  uint8_t h[32];
  crypto_generichash(h, sizeof h, (const unsigned char *)token, len, NULL, 0);
  verified *slot = &v->cache[h[0] % CACHE_SLOTS];
  int64_t now = time_now_ms();

  pthread_mutex_lock(&v->mu);
  bool hit = sodium_memcmp(slot->h, h, sizeof h) == 0 &&
             now - SVCID_LEEWAY_MS < slot->exp_ms;
  if (hit) str_copy(caller, slot->caller, SVCID_NAME_MAX + 1);
  pthread_mutex_unlock(&v->mu);
  if (hit) return ERR_OK;

  int64_t exp_ms = 0;
  int rc = verify_fully(v, token, len, now, caller, &exp_ms, why);
  if (rc != ERR_OK) return rc;
  pthread_mutex_lock(&v->mu);
  memcpy(slot->h, h, sizeof h);
  slot->exp_ms = exp_ms;
  str_copy(slot->caller, caller, sizeof slot->caller);
  pthread_mutex_unlock(&v->mu);
  return ERR_OK;
}

void svcid_verifier_free(svcid_verifier *v) {
  if (v == NULL) return;
  pthread_mutex_destroy(&v->mu);
  svcid_bundle_free(v->bundle);
  free(v);
}
