/*
 * sender.h - one HTTP POST of a webhook through libcurl, defensively.
 *
 * The target is checked and pinned (target.h) before curl starts: curl
 * gets the checked address through CURLOPT_RESOLVE, and its open-socket
 * callback refuses any address but that one, so neither a second DNS
 * answer nor a path we did not foresee can reach inside. No redirects, no
 * proxies from the environment, http and https only, a whole-request
 * timeout, and the response body is read up to a cap and then the
 * transfer is cut (only the status matters). Thread-safe: each thread
 * has its own easy handle, kept between calls so that connections to a
 * receiver are reused (keep-alive); curl_global_init is the caller's,
 * once, and its threads end before curl_global_cleanup.
 */
#ifndef NOTIFICATIONS_SENDER_H
#define NOTIFICATIONS_SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define SENDER_ERROR_MAX 120

typedef struct sender_config {
  int64_t timeout_ms;  /* the whole request; the contract says 10 s */
  size_t max_response; /* bytes of response body read */
  bool allow_private;  /* private targets allowed (dev, tests) */
} sender_config;

typedef struct sender_result {
  int status_code;                  /* 0: no HTTP answer */
  bool ok;                          /* 2xx */
  char error[SENDER_ERROR_MAX + 1]; /* "" when ok; never a secret */
} sender_result;

/* POSTs body[0..len) to url with headers (NULL-terminated "Name: value"
 * lines; Content-Type is added). The result says what happened; the
 * return value is ERR_OK whenever an attempt was made (whatever its
 * outcome), ERR_NOMEM otherwise. */
int sender_post(const sender_config *c, const char *url,
                const char *const *headers, const char *body, size_t len,
                sender_result *out) WARN_UNUSED;

#endif
