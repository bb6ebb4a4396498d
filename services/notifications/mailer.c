/*
 * mailer.c - SMTP through libcurl (see mailer.h). The message is built
 * once in memory and handed to curl through a read callback.
 */
#include "services/notifications/mailer.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/timeutil.h"

#define HEADER_MAX 400 /* bytes of a header value we keep */

bool mailer_address_ok(const char *a) {
  if (a == NULL) return false;
  size_t n = strlen(a);
  const char *at = strchr(a, '@');
  if (n < 3 || n > 320 || at == NULL || at == a || at[1] == '\0' ||
      strchr(at + 1, '@') != NULL)
    return false;
  for (const char *p = a; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f || strchr("<>()[]\\,;:\"", *p) != NULL)
      return false;
  return true;
}

/* v cut at the first control character, into out[cap]. */
static void header_value(const char *v, char *out, size_t cap) {
  size_t i = 0;
  for (; v[i] != '\0' && i + 1 < cap; i++) {
    if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) break;
    out[i] = v[i];
  }
  out[i] = '\0';
}

/* The subject as is when plain ASCII, else "=?UTF-8?B?...?=". */
static void subject_header(const char *s, char *out, size_t cap) {
  char v[HEADER_MAX + 1];
  header_value(s, v, sizeof v);
  bool ascii = true;
  for (const char *p = v; *p; p++) ascii = ascii && (unsigned char)*p < 0x80;
  if (ascii) {
    snprintf(out, cap, "%s", v);
    return;
  }
  char b64[sodium_base64_ENCODED_LEN(HEADER_MAX,
                                     sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, (const unsigned char *)v, strlen(v),
                    sodium_base64_VARIANT_ORIGINAL);
  snprintf(out, cap, "=?UTF-8?B?%s?=", b64);
}

/* body with every line ending made CRLF, appended at out[*len..). */
static void crlf_body(const char *body, char *out, size_t *len) {
  for (const char *p = body; *p; p++) {
    if (*p == '\r') continue;
    if (*p == '\n') out[(*len)++] = '\r';
    out[(*len)++] = *p;
  }
  out[(*len)++] = '\r';
  out[(*len)++] = '\n';
  out[*len] = '\0';
}

int mailer_message(const char *from, const char *to, const char *subject,
                   const char *body, const char *message_id, int64_t date_ms,
                   char **out) {
  *out = NULL;
  char f[HEADER_MAX + 1], t[HEADER_MAX + 1], mid[HEADER_MAX + 1],
      subj[2 * HEADER_MAX], date[64];
  header_value(from, f, sizeof f);
  header_value(to, t, sizeof t);
  header_value(message_id, mid, sizeof mid);
  subject_header(subject, subj, sizeof subj);
  time_t secs = (time_t)(date_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  size_t cap = strlen(body) * 2 + 6 * HEADER_MAX + 512;
  char *m = malloc(cap);
  if (m == NULL) return ERR_NOMEM;
  int n = snprintf(m, cap,
                   "Date: %s\r\nFrom: <%s>\r\nTo: <%s>\r\n"
                   "Message-ID: <%s@notifications>\r\nSubject: %s\r\n"
                   "MIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\n",
                   date, f, t, mid, subj);
  size_t len = (size_t)n;
  crlf_body(body, m, &len);
  *out = m;
  return ERR_OK;
}

typedef struct upload {
  const char *data;
  size_t len, off;
} upload;

static size_t on_read(char *buf, size_t size, size_t n, void *arg) {
  upload *u = arg;
  size_t room = size * n, left = u->len - u->off;
  size_t k = left < room ? left : room;
  memcpy(buf, u->data + u->off, k);
  u->off += k;
  return k;
}

static void outcome(CURL *h, CURLcode rc, sender_result *out) {
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  out->status_code = (int)code;
  out->ok = rc == CURLE_OK;
  if (!out->ok)
    snprintf(out->error, sizeof out->error, "smtp: %s", curl_easy_strerror(rc));
}

int mailer_send(const mailer_config *c, const char *to, const char *subject,
                const char *body, const char *message_id, sender_result *out) {
  memset(out, 0, sizeof *out);
  if (!mailer_address_ok(to) || !mailer_address_ok(c->from)) return ERR_INVAL;
  char *msg = NULL;
  int rc = mailer_message(c->from, to, subject, body, message_id, time_now_ms(),
                          &msg);
  if (rc != ERR_OK) return rc;
  char rcpt_s[HEADER_MAX + 3], from_s[HEADER_MAX + 3];
  snprintf(rcpt_s, sizeof rcpt_s, "<%s>", to);
  snprintf(from_s, sizeof from_s, "<%s>", c->from);
  struct curl_slist *rcpt = curl_slist_append(NULL, rcpt_s);
  CURL *h = curl_easy_init();
  if (rcpt == NULL || h == NULL) {
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(h);
    free(msg);
    return ERR_NOMEM;
  }
  upload u = {.data = msg, .len = strlen(msg)};
  curl_easy_setopt(h, CURLOPT_URL, c->url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
  curl_easy_setopt(h, CURLOPT_MAIL_FROM, from_s);
  curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(h, CURLOPT_READDATA, &u);
  curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)u.len);
  outcome(h, curl_easy_perform(h), out);
  curl_easy_cleanup(h);
  curl_slist_free_all(rcpt);
  free(msg);
  return ERR_OK;
}
