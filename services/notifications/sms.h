/*
 * sms.h - one text message through an SMS provider's HTTP API, through
 * libcurl: a Twilio-style form POST (To, From, Body) to SMS_URL with HTTP
 * Basic credentials (SMS_ACCOUNT, SMS_TOKEN). Any 2xx is success. The
 * provider is configuration, not tenant input, so it is not pinned like a
 * webhook target; still: no redirects, no proxies from the environment,
 * http(s) only, a whole-request timeout, and the answer is not read.
 * Thread-safe: each call has its own easy handle.
 */
#ifndef NOTIFICATIONS_SMS_H
#define NOTIFICATIONS_SMS_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "services/notifications/sender.h"

#define SMS_BODY_MAX 1600 /* bytes: ten concatenated segments */

typedef struct sms_config {
  const char *url;     /* SMS_URL */
  const char *account; /* SMS_ACCOUNT: the Basic user name */
  const char *token;   /* SMS_TOKEN (secret): the Basic password */
  const char *from;    /* SMS_FROM: the sender number */
  int64_t timeout_ms;
} sms_config;

/* "+" and 7..15 digits (E.164). */
bool sms_number_ok(const char *number);

/* Sends body (cut at SMS_BODY_MAX bytes) to the number `to`. The result
 * says what happened; ERR_OK whenever an attempt was made, ERR_INVAL (a
 * bad number), ERR_NOMEM otherwise. */
int sms_send(const sms_config *c, const char *to, const char *body,
             sender_result *out) WARN_UNUSED;

#endif
