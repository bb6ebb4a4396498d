/*
 * mailer.h - one e-mail over SMTP through libcurl (SMTP_URL, e.g.
 * "smtp://mail.example.com:587", credentials in the URL's userinfo or
 * none). STARTTLS is used when the server offers it (CURLOPT_USE_SSL
 * CURLUSESSL_TRY); "smtps://" is TLS from the first byte. The message is
 * plain text, UTF-8, with a Message-ID derived from the delivery id (the
 * same on every attempt, so a retried message can be recognised).
 *
 * Header injection: every header value is cut at the first control
 * character; a subject that is not plain ASCII is an RFC 2047 encoded
 * word. Addresses are checked (mailer_address_ok) before they are used.
 * Thread-safe: each call has its own easy handle.
 */
#ifndef NOTIFICATIONS_MAILER_H
#define NOTIFICATIONS_MAILER_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "services/notifications/sender.h"

typedef struct mailer_config {
  const char *url;  /* SMTP_URL (secret: may hold credentials) */
  const char *from; /* NOTIFICATIONS_MAIL_FROM */
  int64_t timeout_ms;
} mailer_config;

/* A plausible address with no character that could break a header or an
 * SMTP command: local@domain, printable ASCII, no spaces, <, >, quotes. */
bool mailer_address_ok(const char *addr);

/* The whole message (headers, blank line, body with CRLF line ends) into
 * *out (malloc'd; the caller frees). Exposed for tests. */
int mailer_message(const char *from, const char *to, const char *subject,
                   const char *body, const char *message_id, int64_t date_ms,
                   char **out) WARN_UNUSED;

/* Sends one message to `to`. The result says what happened (ok when the
 * server accepted the message; status_code is the last SMTP reply code);
 * the return value is ERR_OK whenever an attempt was made, ERR_NOMEM or
 * ERR_INVAL (a bad address) otherwise. */
int mailer_send(const mailer_config *c, const char *to, const char *subject,
                const char *body, const char *message_id,
                sender_result *out) WARN_UNUSED;

#endif
