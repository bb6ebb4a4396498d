/*
 * engine.h - the multi-server client's core: one logical request sent to
 * several deployments in parallel over one curl multi handle.
 *
 * Each server runs its own small pipeline - log in, make the request,
 * log out - so a slow server never holds up a fast one. A request that
 * got no answer, or 429/502/503/504, is repeated after a backoff with
 * jitter (Retry-After honoured, bounded), with the same Idempotency-Key
 * on every attempt: one key per logical write, so a write whose answer
 * was lost is answered from the server's idempotency record instead of
 * being done twice. A 401 on the request (the access token expired or
 * was revoked) spends the refresh token for a new pair, or logs in again
 * when that is refused, and repeats the request once more; a second 401
 * is that server's failure. Every session opened is logged out at the end,
 * whatever the outcome, so no refresh family outlives the run.
 *
 * Modes: `all` succeeds when every server answers 2xx, `quorum` when a
 * strict majority does (both wait for every server, to report each), and
 * `fastest` when one does: the first 2xx wins and the other servers'
 * transfers are cancelled (removed from the multi handle).
 */
#ifndef TOOLS_MULTI_ENGINE_H
#define TOOLS_MULTI_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/uuid.h"

#define ENGINE_MAX_SERVERS 16

typedef enum { MODE_ALL, MODE_QUORUM, MODE_FASTEST } engine_mode;

typedef enum {
  OUT_PENDING,
  OUT_OK,           /* 2xx */
  OUT_REFUSED,      /* an HTTP answer that is not 2xx */
  OUT_UNREACHABLE,  /* no answer after every attempt */
  OUT_LOGIN_FAILED, /* the login itself was refused or unanswered */
  OUT_CANCELLED     /* fastest: another server answered first */
} engine_outcome;

typedef struct engine_server {
  const char *url; /* borrowed */
  engine_outcome outcome;
  long status;       /* last HTTP status of the request (0: none) */
  int attempts;      /* of the request itself */
  int renewals;      /* refreshes or logins after a 401 */
  double latency_ms; /* first attempt of the request to its outcome */
  char detail[256];  /* why it failed, for people */
  json_t *answer;    /* the 2xx body (or the error body), or NULL */
  bool logged_out;
  /* private to engine.c */
  int step, login_attempts;
  int64_t ready_ns, op_start_ns;
  char token[1024], refresh[512];
  void *xfer;
} engine_server;

typedef struct engine_cfg {
  engine_mode mode;
  const char *method; /* "GET" or "POST"/"PATCH"/... */
  const char *path;
  const char *body;     /* JSON or NULL */
  const char *idem_key; /* for writes; NULL for reads */
  const char *tenant, *email, *password;
  long timeout_ms;
  int retries; /* extra attempts after the first */
  size_t max_resp;
} engine_cfg;

typedef struct engine_result {
  int n;
  engine_server servers[ENGINE_MAX_SERVERS];
  int ok_count;
  int winner; /* fastest: index of the first 2xx; -1 otherwise */
  bool met;   /* the mode's condition holds */
} engine_result;

/* Runs cfg against urls[0..n). Fills res (free with engine_result_free).
 * Returns 0, or -1 on a local failure (out of memory, curl). */
int engine_run(const engine_cfg *cfg, const char *const *urls, int n,
               engine_result *res);

void engine_result_free(engine_result *res);

const char *engine_outcome_name(engine_outcome o);
const char *engine_mode_name(engine_mode m);

#endif
