/*
 * log.c - structured JSON logging (see log.h).
 *
 * Design. Each record is built as a jansson object (insertion order is
 * kept, so "ts", "level", "svc", "msg", "request_id" always come first),
 * dumped with JSON_COMPACT, and written with one write(2) of the whole line
 * including its newline. POSIX makes a single write to a pipe of at most
 * PIPE_BUF bytes atomic, and in practice container runtimes read stdout
 * line by line, so one write per line is what keeps concurrent threads'
 * lines from interleaving; no lock is needed. Lines are bounded (each value
 * is truncated to LOG_MAX_VALUE bytes) so one record can never be huge.
 *
 * jansson refuses strings that are not valid UTF-8; values coming from the
 * wire may be anything, so such values are repaired (each bad byte becomes
 * U+FFFD) rather than dropped. Control characters, quotes and backslashes
 * are escaped by jansson itself.
 *
 * The request id lives in thread-local storage: RPC handlers set it when
 * they pick up a request and clear it when they answer.
 */
#include "libs/obs/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/utf8.h"

#define LOG_MAX_VALUE 4096
#define LOG_MAX_SERVICE 64
#define LOG_MAX_REQUEST_ID 128

static char log_service[LOG_MAX_SERVICE + 1] = "-";
static atomic_int log_min_level = LOG_INFO;

static __thread char tl_request_id[LOG_MAX_REQUEST_ID + 1];
static __thread bool tl_has_request_id;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *service, enum log_level min_level) {
  str_copy(log_service, service && *service ? service : "-",
           sizeof log_service);
  if ((int)min_level < LOG_DEBUG || min_level > LOG_ERROR) min_level = LOG_INFO;
  atomic_store(&log_min_level, (int)min_level);
}

int log_level_parse(const char *s) {
  if (!s) return -1;
  for (int i = 0; i <= LOG_ERROR; i++)
    if (strcasecmp(s, level_names[i]) == 0) return i;
  return -1;
}

void log_set_request_id(const char *request_id) {
  if (!request_id) {
    tl_has_request_id = false;
    tl_request_id[0] = '\0';
    return;
  }
  str_copy(tl_request_id, request_id, sizeof tl_request_id);
  tl_has_request_id = true;
}

const char *log_request_id(void) {
  return tl_has_request_id ? tl_request_id : NULL;
}

/* A jansson string for s, truncated to LOG_MAX_VALUE bytes and with each
 * byte that is not part of valid UTF-8 (including a character cut by the
 * truncation) replaced by U+FFFD. NULL on out of memory. */
static json_t *safe_string(const char *s) {
  size_t n = strnlen(s, LOG_MAX_VALUE);
  if (utf8_valid(s, n)) return json_stringn(s, n);
  /* Worst case every byte becomes the 3-byte U+FFFD. */
  char *fixed = malloc(n * 3 + 1);
  if (!fixed) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq_len(s + i, n - i);
    if (k == 0) {
      memcpy(fixed + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
    } else {
      memcpy(fixed + o, s + i, k);
      o += k;
      i += k;
    }
  }
  json_t *j = json_stringn(fixed, o);
  free(fixed);
  return j;
}

static bool reserved_key(const char *k) {
  return strcmp(k, "ts") == 0 || strcmp(k, "level") == 0 ||
         strcmp(k, "svc") == 0 || strcmp(k, "msg") == 0 ||
         strcmp(k, "request_id") == 0;
}

/* Adds key=value; a key that collides with a standard field or an earlier
 * key is kept under "_<key>" rather than overwriting it. */
static void add_field(json_t *obj, const char *key, json_t *val) {
  if (!val) return;
  char alt[136];
  const char *k = key;
  if (reserved_key(k) || json_object_get(obj, k)) {
    snprintf(alt, sizeof alt, "_%s", key);
    k = alt;
  }
  /* jansson also requires keys to be valid UTF-8. */
  if (json_object_set_new(obj, k, val) != 0) {
    json_t *ks = safe_string(k);
    if (ks)
      (void)json_object_set_new(obj, json_string_value(ks), val);
    else
      json_decref(val);
    json_decref(ks);
  }
}

static void write_all(const char *p, size_t n) {
  /* One write normally takes the whole line; only a partial write (a full
   * pipe, a signal) makes us loop. */
  while (n > 0) {
    ssize_t w = write(STDOUT_FILENO, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

void log_msg(enum log_level level, const char *msg, ...) {
  if ((int)level < atomic_load_explicit(&log_min_level, memory_order_relaxed))
    return;
  if ((int)level < LOG_DEBUG || level > LOG_ERROR) level = LOG_ERROR;

  char ts[RFC3339_MS_LEN + 1];
  if (time_format_rfc3339(time_now_ms(), ts) != ERR_OK)
    str_copy(ts, "1970-01-01T00:00:00.000Z", sizeof ts);

  json_t *obj = json_object();
  if (!obj) return;
  (void)json_object_set_new(obj, "ts", json_string(ts));
  (void)json_object_set_new(obj, "level", json_string(level_names[level]));
  (void)json_object_set_new(obj, "svc", safe_string(log_service));
  (void)json_object_set_new(obj, "msg", safe_string(msg ? msg : ""));
  if (tl_has_request_id)
    (void)json_object_set_new(obj, "request_id", safe_string(tl_request_id));

  va_list ap;
  va_start(ap, msg);
  for (;;) {
    const char *key = va_arg(ap, const char *);
    if (!key) break;
    const char *val = va_arg(ap, const char *);
    if (!val) {
      /* A NULL value may be the terminator (odd number of arguments):
       * reading further would run past the argument list. */
      add_field(obj, key, json_null());
      break;
    }
    add_field(obj, key, safe_string(val));
  }
  va_end(ap);

  char *line = json_dumps(obj, JSON_COMPACT);
  json_decref(obj);
  if (!line) return;
  size_t n = strlen(line);
  /* json_dumps' buffer is exactly sized; grow it by the newline so the
   * line still goes out in one write. */
  char *out = realloc(line, n + 2);
  if (!out) {
    free(line);
    return;
  }
  out[n] = '\n';
  out[n + 1] = '\0';
  write_all(out, n + 1);
  free(out);
}
