/*
 * engine.c - see engine.h. One loop drives every server's pipeline: start
 * the transfers whose backoff has passed, let curl move bytes, handle
 * each finished transfer (which decides that server's next step), and
 * sleep in curl_multi_poll until a socket is ready or the next backoff
 * ends. The op phase ends when every server has an outcome; the logout
 * phase then runs the same loop over the servers that hold a session.
 */
#include "tools/multi/engine.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "tools/multi/xfer.h"

enum { STEP_LOGIN, STEP_OP, STEP_REFRESH, STEP_LOGOUT, STEP_DONE };

#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 3000
#define RETRY_AFTER_CAP_S 5
#define LOGOUT_TIMEOUT_MS 3000

typedef struct run {
  const engine_cfg *cfg;
  engine_result *res;
  CURLM *multi;
} run;

static void finish(engine_server *s, engine_outcome o, const char *detail) {
  s->outcome = o;
  s->step = STEP_DONE;
  if (detail != NULL) snprintf(s->detail, sizeof s->detail, "%s", detail);
  if (s->op_start_ns != 0)
    s->latency_ms = (double)(time_mono_ns() - s->op_start_ns) / 1e6;
}

/* Exponential backoff from BACKOFF_BASE_MS with full jitter in its upper
 * half, or the server's Retry-After when it asked (bounded). */
static void schedule_retry(engine_server *s, const xfer *x, int attempt) {
  int64_t ms = BACKOFF_BASE_MS << (attempt < 5 ? attempt - 1 : 4);
  if (ms > BACKOFF_CAP_MS) ms = BACKOFF_CAP_MS;
  ms = ms / 2 + randombytes_uniform((uint32_t)(ms / 2 + 1));
  if (x->status == 429 && x->retry_after_s > 0)
    ms = 1000 * (x->retry_after_s < RETRY_AFTER_CAP_S ? x->retry_after_s
                                                      : RETRY_AFTER_CAP_S);
  s->ready_ns = time_mono_ns() + ms * 1000000;
}

/* The request of s's current step. Secrets live in `body` only while
 * the xfer copies them. */
static int build(const run *r, engine_server *s, xfer *x) {
  const engine_cfg *c = r->cfg;
  xfer_req q = {.base = s->url,
                .timeout_ms = c->timeout_ms,
                .max_resp = c->max_resp,
                .tenant = c->tenant};
  json_t *b = NULL;
  switch (s->step) {
  case STEP_LOGIN:
    q.method = "POST", q.path = "/v1/auth/login";
    b = json_pack("{ssss}", "email", c->email, "password", c->password);
    break;
  case STEP_REFRESH:
    q.method = "POST", q.path = "/v1/auth/refresh";
    b = json_pack("{ss}", "refresh_token", s->refresh);
    break;
  case STEP_LOGOUT:
    q.method = "POST", q.path = "/v1/auth/logout", q.token = s->token;
    q.timeout_ms = LOGOUT_TIMEOUT_MS;
    b = json_pack("{ss}", "refresh_token", s->refresh);
    break;
  default:
    q.method = c->method, q.path = c->path, q.token = s->token;
    q.body = c->body, q.idem_key = c->idem_key;
    q.tenant = NULL; /* the token names the tenant */
  }
  char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;
  json_decref(b);
  if (text != NULL) q.body = text;
  int rc = xfer_init(x, &q);
  if (text != NULL) {
    explicit_bzero(text, strlen(text));
    free(text);
  }
  return rc;
}

static int start(run *r, engine_server *s) {
  xfer *x = calloc(1, sizeof *x);
  if (x == NULL || build(r, s, x) != 0) {
    free(x);
    return -1;
  }
  x->user = s;
  s->xfer = x;
  if (s->step == STEP_OP) {
    if (s->op_start_ns == 0) s->op_start_ns = time_mono_ns();
    s->attempts++;
  }
  return curl_multi_add_handle(r->multi, x->easy) == CURLM_OK ? 0 : -1;
}

static void take_tokens(engine_server *s, const xfer *x) {
  json_t *j = xfer_json(x);
  const char *a = j ? xfer_str(j, "access_token") : NULL;
  const char *f = j ? xfer_str(j, "refresh_token") : NULL;
  snprintf(s->token, sizeof s->token, "%s", a ? a : "");
  snprintf(s->refresh, sizeof s->refresh, "%s", f ? f : "");
  json_decref(j);
}

static void on_login(const run *r, engine_server *s, const xfer *x) {
  char d[200];
  if (xfer_ok(x)) {
    take_tokens(s, x);
    s->step = s->token[0] ? STEP_OP : STEP_DONE;
    if (!s->token[0]) finish(s, OUT_LOGIN_FAILED, "login: no token");
  } else if (xfer_retryable(x) && ++s->login_attempts <= r->cfg->retries) {
    schedule_retry(s, x, s->login_attempts);
  } else {
    char m[256];
    snprintf(m, sizeof m, "login: %s", xfer_describe(x, d, sizeof d));
    s->status = x->status;
    finish(s, OUT_LOGIN_FAILED, m);
  }
}

static void on_refresh(engine_server *s, const xfer *x) {
  if (xfer_ok(x)) {
    take_tokens(s, x);
    s->step = STEP_OP;
  } else {
    s->token[0] = s->refresh[0] = '\0'; /* spent or refused: log in again */
    s->step = STEP_LOGIN;
    s->login_attempts = 0;
  }
}

static void on_op(run *r, engine_server *s, const xfer *x) {
  char d[200];
  s->status = x->status;
  if (xfer_ok(x)) {
    json_decref(s->answer);
    s->answer = xfer_json(x);
    finish(s, OUT_OK, NULL);
    return;
  }
  if (x->status == 401 && s->renewals == 0) {
    s->renewals++; /* expired or revoked: renew once, same key after */
    s->step = s->refresh[0] ? STEP_REFRESH : STEP_LOGIN;
    return;
  }
  if (xfer_retryable(x) && s->attempts <= r->cfg->retries) {
    schedule_retry(s, x, s->attempts);
    return;
  }
  json_decref(s->answer);
  s->answer = xfer_json(x);
  finish(s, x->rc == CURLE_OK ? OUT_REFUSED : OUT_UNREACHABLE,
         xfer_describe(x, d, sizeof d));
}

static void on_done(run *r, engine_server *s, xfer *x) {
  switch (s->step) {
  case STEP_LOGIN:
    on_login(r, s, x);
    break;
  case STEP_REFRESH:
    on_refresh(s, x);
    break;
  case STEP_OP:
    on_op(r, s, x);
    break;
  case STEP_LOGOUT:
    s->logged_out = xfer_ok(x);
    s->step = STEP_DONE;
    break;
  }
}

static void drop_xfer(run *r, engine_server *s) {
  xfer *x = s->xfer;
  if (x == NULL) return;
  curl_multi_remove_handle(r->multi, x->easy);
  xfer_free(x);
  free(x);
  s->xfer = NULL;
}

/* fastest: the first 2xx wins; every other server stops where it is. */
static void cancel_others(run *r, int winner) {
  for (int i = 0; i < r->res->n; i++) {
    engine_server *s = &r->res->servers[i];
    if (i == winner || s->step == STEP_DONE) continue;
    drop_xfer(r, s);
    finish(s, OUT_CANCELLED, "another server answered first");
  }
}

static void reap(run *r) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(r->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    xfer *x = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    engine_server *s = x->user;
    xfer_done(x, m->data.result);
    on_done(r, s, x);
    drop_xfer(r, s);
    if (r->cfg->mode == MODE_FASTEST && s->outcome == OUT_OK &&
        r->res->winner < 0) {
      r->res->winner = (int)(s - r->res->servers);
      cancel_others(r, r->res->winner);
    }
  }
}

/* Runs every server's pipeline until each is DONE. */
static int loop(run *r) {
  for (;;) {
    int64_t now = time_mono_ns(), next = INT64_MAX;
    bool active = false;
    for (int i = 0; i < r->res->n; i++) {
      engine_server *s = &r->res->servers[i];
      if (s->step == STEP_DONE) continue;
      active = true;
      if (s->xfer != NULL) continue;
      if (s->ready_ns > now) {
        if (s->ready_ns < next) next = s->ready_ns;
        continue;
      }
      if (start(r, s) != 0) return -1;
    }
    if (!active) return 0;
    int running;
    curl_multi_perform(r->multi, &running);
    reap(r);
    int wait_ms = 200;
    if (next != INT64_MAX && (next - now) / 1000000 < wait_ms)
      wait_ms = (int)((next - now) / 1000000) + 1;
    curl_multi_poll(r->multi, NULL, 0, wait_ms, NULL);
  }
}

static void tally(const engine_cfg *c, engine_result *res) {
  res->ok_count = 0;
  for (int i = 0; i < res->n; i++)
    res->ok_count += res->servers[i].outcome == OUT_OK;
  switch (c->mode) {
  case MODE_ALL:
    res->met = res->ok_count == res->n;
    break;
  case MODE_QUORUM:
    res->met = 2 * res->ok_count > res->n;
    break;
  case MODE_FASTEST:
    res->met = res->winner >= 0;
    break;
  }
}

int engine_run(const engine_cfg *cfg, const char *const *urls, int n,
               engine_result *res) {
  memset(res, 0, sizeof *res);
  res->winner = -1;
  if (n < 1 || n > ENGINE_MAX_SERVERS || sodium_init() < 0) return -1;
  res->n = n;
  for (int i = 0; i < n; i++) res->servers[i].url = urls[i];
  run r = {.cfg = cfg, .res = res, .multi = curl_multi_init()};
  if (r.multi == NULL) return -1;
  int rc = loop(&r);
  tally(cfg, res);
  for (int i = 0; i < n && rc == 0; i++) {
    engine_server *s = &res->servers[i];
    s->step = s->token[0] ? STEP_LOGOUT : STEP_DONE;
    s->ready_ns = 0;
  }
  if (rc == 0) rc = loop(&r);
  for (int i = 0; i < n; i++) drop_xfer(&r, &res->servers[i]);
  curl_multi_cleanup(r.multi);
  return rc;
}

void engine_result_free(engine_result *res) {
  for (int i = 0; i < res->n; i++) {
    engine_server *s = &res->servers[i];
    json_decref(s->answer);
    s->answer = NULL;
    sodium_memzero(s->token, sizeof s->token);
    sodium_memzero(s->refresh, sizeof s->refresh);
  }
}

const char *engine_outcome_name(engine_outcome o) {
  static const char *const k[] = {"pending",     "ok",           "refused",
                                  "unreachable", "login_failed", "cancelled"};
  return k[o];
}

const char *engine_mode_name(engine_mode m) {
  static const char *const k[] = {"all", "quorum", "fastest"};
  return k[m];
}
