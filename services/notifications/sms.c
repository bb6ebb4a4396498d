/*
 * sms.c - the provider's form POST (see sms.h). Values are form-encoded
 * with curl_easy_escape; the credentials travel only in the Authorization
 * header curl builds, never in a log or an error.
 */
#include "services/notifications/sms.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool sms_number_ok(const char *n) {
  if (n == NULL || n[0] != '+') return false;
  size_t digits = 0;
  for (const char *p = n + 1; *p; p++, digits++)
    if (*p < '0' || *p > '9') return false;
  return digits >= 7 && digits <= 15;
}

/* Discards the answer: only the status matters. */
static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  (void)p;
  (void)arg;
  return size * n;
}

/* "To=..&From=..&Body=.." (malloc'd) or NULL. */
static char *form(CURL *h, const char *to, const char *from, const char *body) {
  size_t blen = strlen(body);
  char *t = curl_easy_escape(h, to, 0), *f = curl_easy_escape(h, from, 0),
       *b = curl_easy_escape(h, body,
                             (int)(blen > SMS_BODY_MAX ? SMS_BODY_MAX : blen));
  char *out = NULL;
  if (t != NULL && f != NULL && b != NULL) {
    size_t cap = strlen(t) + strlen(f) + strlen(b) + 32;
    out = malloc(cap);
    if (out != NULL) snprintf(out, cap, "To=%s&From=%s&Body=%s", t, f, b);
  }
  curl_free(t);
  curl_free(f);
  curl_free(b);
  return out;
}

int sms_send(const sms_config *c, const char *to, const char *body,
             sender_result *out) {
  memset(out, 0, sizeof *out);
  if (!sms_number_ok(to)) return ERR_INVAL;
  CURL *h = curl_easy_init();
  char *data = h != NULL ? form(h, to, c->from, body) : NULL;
  if (data == NULL) {
    curl_easy_cleanup(h);
    return ERR_NOMEM;
  }
  curl_easy_setopt(h, CURLOPT_URL, c->url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
  curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
  curl_easy_setopt(h, CURLOPT_USERNAME, c->account);
  curl_easy_setopt(h, CURLOPT_PASSWORD, c->token);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  out->status_code = (int)code;
  out->ok = rc == CURLE_OK && code >= 200 && code < 300;
  if (rc != CURLE_OK)
    snprintf(out->error, sizeof out->error, "sms: %s", curl_easy_strerror(rc));
  else if (!out->ok)
    snprintf(out->error, sizeof out->error, "sms: HTTP %ld", code);
  curl_easy_cleanup(h);
  free(data);
  return ERR_OK;
}
