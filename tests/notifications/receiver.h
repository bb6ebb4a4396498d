/*
 * receiver.h - the webhook receiver of the notifications integration test:
 * a real HTTP server (libmicrohttpd, its own threads, on 127.0.0.1) that
 * records every POST it gets and answers as the test tells it to.
 *
 * Each endpoint is a path "/r/<name>" with its own behaviour, its secret
 * (for checking signatures) and its log of requests. Signatures are
 * checked here with this file's own HMAC-SHA256 code over
 * "<webhook-id>.<webhook-timestamp>.<body>", keyed with the base64-decoded
 * secret after "whsec_" - the Standard Webhooks rule, written
 * independently of the service's seal.c.
 */
#ifndef TESTS_NOTIFICATIONS_RECEIVER_H
#define TESTS_NOTIFICATIONS_RECEIVER_H

#include <stdbool.h>
#include <stddef.h>

#define RECEIVER_MAX_SECRETS 2

typedef enum receiver_mode {
  RECEIVER_OK = 0,     /* 200 */
  RECEIVER_FAIL,       /* 500 */
  RECEIVER_FAIL_FIRST, /* 500 for the first `n` requests, then 200 */
  RECEIVER_HOLD,       /* wait until released, then 200 (or `n`) */
  RECEIVER_REDIRECT,   /* 302 to /r/<name>-target (must not be followed) */
  RECEIVER_HUGE,       /* 200 with a 4 MiB body */
} receiver_mode;

/* One request as received. */
typedef struct receiver_hit {
  char id[64];   /* webhook-id */
  long long ts;  /* webhook-timestamp */
  int nsig;      /* v1 signatures in the header */
  int valid_new; /* how many verify with the endpoint's current secret */
  int valid_old; /* ... with its previous secret */
  int status;    /* what we answered */
  char *body;    /* malloc'd */
} receiver_hit;

typedef struct receiver receiver;

receiver *receiver_start(void); /* NULL on failure (printed) */
void receiver_stop(receiver *r);
int receiver_port(const receiver *r);

/* Sets (or changes) endpoint name's behaviour. */
void receiver_set_mode(receiver *r, const char *name, receiver_mode m, int n);
/* Sets name's current secret ("whsec_..."); the old current one becomes
 * the previous one. */
void receiver_set_secret(receiver *r, const char *name, const char *secret);
/* Releases the requests held under RECEIVER_HOLD (and the mode becomes OK). */
void receiver_release(receiver *r, const char *name);

/* Number of requests name got so far; requests being held included. */
int receiver_count(receiver *r, const char *name);
/* Requests held right now. */
int receiver_held(receiver *r, const char *name);
/* A copy of request i of name (body malloc'd: receiver_hit_free). False
 * when there is none. */
bool receiver_hit_at(receiver *r, const char *name, int i, receiver_hit *out);
void receiver_hit_free(receiver_hit *h);
/* Requests of name whose webhook-id is id and that were answered 2xx. */
int receiver_ok_count(receiver *r, const char *name, const char *id);

#endif
