/*
 * config.c - configuration from environment variables (see config.h).
 *
 * Design. The service's table is the single source of truth: cfg_load
 * walks it once, parses every value into a typed slot and collects all
 * errors into one message, so an operator fixes a broken deployment in one
 * round. The cfg keeps a copy of each value's text (the environment may
 * change later; getenv's pointers are not ours) and a pointer to the
 * caller's table. Lookups are linear: tables are small and getters run at
 * start-up, not per request.
 *
 * Redaction is textual and deliberately greedy: it cannot know every
 * connection-string dialect, so for a URL it hides everything between the
 * first ':' of the user-info and the last '@' of that URL, even if that
 * hides a little more than the password.
 */
#include "libs/obs/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "libs/base/strbuf.h"
#include "libs/base/strutil.h"
#include "libs/obs/log.h"

#define REDACTED "***"

struct cfg_value {
  const cfg_entry *e;
  char *text; /* NULL when unset without default */
  bool from_env;
  long long num; /* CFG_INT, CFG_DURATION_MS */
  bool flag;     /* CFG_BOOL */
};

struct cfg {
  size_t n;
  struct cfg_value *v;
};

/* ---- error accumulation ---- */

struct errbuf {
  char *p;
  size_t cap, len;
  int count;
};

__attribute__((format(printf, 2, 3))) static void
err_add(struct errbuf *eb, const char *fmt, ...) {
  eb->count++;
  if (!eb->p || eb->cap == 0) return;
  if (eb->len > 0 && eb->len + 2 < eb->cap) {
    memcpy(eb->p + eb->len, "; ", 3);
    eb->len += 2;
  }
  if (eb->len >= eb->cap - 1) return;
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(eb->p + eb->len, eb->cap - eb->len, fmt, ap);
  va_end(ap);
  if (w > 0)
    eb->len +=
        (size_t)w < eb->cap - eb->len ? (size_t)w : eb->cap - eb->len - 1;
}

/* ---- parsing ---- */

static bool parse_ll(const char *s, long long *out) {
  /* strtoll skips leading blanks and accepts "0x" with base 0; be strict. */
  if (!*s || isspace((unsigned char)*s)) return false;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') return false;
  *out = v;
  return true;
}

static bool parse_duration(const char *s, long long *out) {
  if (!*s || !isdigit((unsigned char)*s)) return false;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s) return false;
  long long mul;
  if (*end == '\0' || strcmp(end, "ms") == 0)
    mul = 1;
  else if (strcmp(end, "s") == 0)
    mul = 1000;
  else if (strcmp(end, "m") == 0)
    mul = 60 * 1000;
  else if (strcmp(end, "h") == 0)
    mul = 3600 * 1000;
  else
    return false;
  if (v > LLONG_MAX / mul) return false;
  *out = v * mul;
  return true;
}

static bool parse_bool(const char *s, bool *out) {
  static const char *const t[] = {"true", "1", "yes", "on"};
  static const char *const f[] = {"false", "0", "no", "off"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(s, t[i]) == 0) {
      *out = true;
      return true;
    }
    if (strcasecmp(s, f[i]) == 0) {
      *out = false;
      return true;
    }
  }
  return false;
}

static bool valid_url(const char *s) {
  const char *p = s;
  if (isalpha((unsigned char)*p)) {
    p++;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '.' || *p == '-')
      p++;
    if (strncmp(p, "://", 3) == 0 && p[3] != '\0') return true;
  }
  /* libpq keyword/value form: starts with a keyword and '='. */
  p = s;
  if (!isalpha((unsigned char)*p)) return false;
  while (isalnum((unsigned char)*p) || *p == '_') p++;
  while (*p == ' ') p++;
  return *p == '=';
}

static bool has_control(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
  return false;
}

/* The value as safe to echo in an error or a log line. */
static void shown_value(const cfg_entry *e, const char *text, char *out,
                        size_t cap) {
  if (e->secret) {
    str_copy(out, REDACTED, cap);
    return;
  }
  (void)cfg_redact(text, out, cap);
  /* Control characters would make the message ambiguous. */
  for (char *p = out; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

static bool bounded(const cfg_entry *e, long long v) {
  if (e->min == 0 && e->max == 0) return true;
  return v >= e->min && v <= e->max;
}

/* Parses text into slot v; on failure adds an error naming the variable.
 * origin is "" or " (default)" for the message. */
static void parse_value(struct cfg_value *v, struct errbuf *eb,
                        const char *origin) {
  const cfg_entry *e = v->e;
  char shown[160];
  shown_value(e, v->text, shown, sizeof shown);
  if (strlen(v->text) > CFG_MAX_VALUE) {
    err_add(eb, "%s: value too long (max %d bytes)%s", e->name, CFG_MAX_VALUE,
            origin);
    return;
  }
  if (has_control(v->text)) {
    err_add(eb, "%s: value contains control characters%s", e->name, origin);
    return;
  }
  switch (e->kind) {
  case CFG_STRING:
    return;
  case CFG_INT:
    if (!parse_ll(v->text, &v->num)) {
      err_add(eb, "%s: not an integer: \"%s\"%s", e->name, shown, origin);
      return;
    }
    if (!bounded(e, v->num))
      err_add(eb, "%s: %lld out of range [%lld, %lld]%s", e->name, v->num,
              e->min, e->max, origin);
    return;
  case CFG_DURATION_MS:
    if (!parse_duration(v->text, &v->num)) {
      err_add(eb, "%s: not a duration (e.g. 250ms, 5s, 2m, 1h): \"%s\"%s",
              e->name, shown, origin);
      return;
    }
    if (!bounded(e, v->num))
      err_add(eb, "%s: %lld ms out of range [%lld, %lld] ms%s", e->name, v->num,
              e->min, e->max, origin);
    return;
  case CFG_BOOL:
    if (!parse_bool(v->text, &v->flag))
      err_add(eb,
              "%s: not a boolean (true/false/1/0/yes/no/on/off): "
              "\"%s\"%s",
              e->name, shown, origin);
    return;
  case CFG_URL:
    /* Not echoed: a malformed connection string may hold a password
     * in a shape the redaction does not recognise. */
    if (!valid_url(v->text))
      err_add(eb, "%s: not a URL (scheme://...) or key=value string%s", e->name,
              origin);
    return;
  }
  err_add(eb, "%s: unknown kind %d", e->name, (int)e->kind);
}

int cfg_load(const cfg_entry *entries, size_t n, cfg **out, char *err,
             size_t errcap) {
  struct errbuf eb = {.p = err, .cap = errcap};
  if (err && errcap) err[0] = '\0';
  if (out) *out = NULL;
  if (!out || (!entries && n > 0)) {
    err_add(&eb, "cfg_load: bad arguments");
    return ERR_INVAL;
  }
  if (n > CFG_MAX_ENTRIES) {
    err_add(&eb, "cfg_load: %zu entries (max %d)", n, CFG_MAX_ENTRIES);
    return ERR_INVAL;
  }
  int rc = ERR_NOMEM;
  cfg *c = calloc(1, sizeof *c);
  if (!c) goto err;
  c->n = n;
  c->v = calloc(n ? n : 1, sizeof *c->v);
  if (!c->v) goto err;
  for (size_t i = 0; i < n; i++) {
    const cfg_entry *e = &entries[i];
    struct cfg_value *v = &c->v[i];
    v->e = e;
    if (!e->name || !*e->name) {
      err_add(&eb, "entry %zu: no name", i);
      continue;
    }
    bool dup = false;
    for (size_t j = 0; j < i; j++)
      if (entries[j].name && strcmp(entries[j].name, e->name) == 0) dup = true;
    if (dup) {
      err_add(&eb, "%s: declared twice", e->name);
      continue;
    }
    const char *env = getenv(e->name);
    if (env && *env) {
      v->from_env = true;
      /* Copy at most one byte past the bound so "too long" is detected. */
      size_t len = strnlen(env, CFG_MAX_VALUE + 1);
      v->text = malloc(len + 1);
      if (!v->text) goto err;
      memcpy(v->text, env, len);
      v->text[len] = '\0';
      parse_value(v, &eb, "");
    } else if (e->required) {
      if (e->description)
        err_add(&eb, "%s: required but not set (%s)", e->name, e->description);
      else
        err_add(&eb, "%s: required but not set", e->name);
    } else if (e->def) {
      v->text = strdup(e->def);
      if (!v->text) goto err;
      parse_value(v, &eb, " (default)");
    }
  }
  if (eb.count > 0) {
    rc = ERR_INVAL;
    goto err;
  }
  *out = c;
  return ERR_OK;
err:
  if (rc == ERR_NOMEM && eb.count == 0) err_add(&eb, "cfg_load: out of memory");
  cfg_free(c);
  return rc;
}

void cfg_free(cfg *c) {
  if (!c) return;
  for (size_t i = 0; c->v && i < c->n; i++) free(c->v[i].text);
  free(c->v);
  free(c);
}

static const struct cfg_value *find(const cfg *c, const char *name) {
  if (!c || !name) return NULL;
  for (size_t i = 0; i < c->n; i++)
    if (c->v[i].e->name && strcmp(c->v[i].e->name, name) == 0) return &c->v[i];
  return NULL;
}

const char *cfg_str(const cfg *c, const char *name) {
  const struct cfg_value *v = find(c, name);
  return v ? v->text : NULL;
}

long long cfg_int(const cfg *c, const char *name) {
  const struct cfg_value *v = find(c, name);
  return v && v->text && v->e->kind == CFG_INT ? v->num : 0;
}

int64_t cfg_duration_ms(const cfg *c, const char *name) {
  const struct cfg_value *v = find(c, name);
  return v && v->text && v->e->kind == CFG_DURATION_MS ? (int64_t)v->num : 0;
}

bool cfg_bool(const cfg *c, const char *name) {
  const struct cfg_value *v = find(c, name);
  return v && v->text && v->e->kind == CFG_BOOL ? v->flag : false;
}

bool cfg_is_set(const cfg *c, const char *name) {
  const struct cfg_value *v = find(c, name);
  return v && v->from_env;
}

void cfg_print(const cfg *c) {
  if (!c) return;
  for (size_t i = 0; i < c->n; i++) {
    const struct cfg_value *v = &c->v[i];
    char shown[CFG_MAX_VALUE + 1];
    const char *source = v->from_env ? "env" : v->text ? "default" : "unset";
    if (v->text)
      shown_value(v->e, v->text, shown, sizeof shown);
    else
      shown[0] = '\0';
    log_info("config", "name", v->e->name, "value", shown, "source", source);
  }
}

/* ---- redaction ---- */

/* Pass 1: URL user-info passwords. For each "://", the URL's text runs to
 * the next "://" (so lists of URLs work); its user-info ends at the last
 * '@' in that stretch, and the password is what follows the first ':'. */
static void redact_userinfo(const char *in, strbuf *b) {
  const char *p = in; /* next byte to copy */
  const char *sep;
  while ((sep = strstr(p, "://")) != NULL) {
    const char *start = sep + 3;
    const char *next = strstr(start, "://");
    const char *end = next ? next : start + strlen(start);
    const char *at = NULL;
    for (const char *q = start; q < end; q++)
      if (*q == '@') at = q;
    const char *colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
    if (colon) {
      strbuf_putn(b, p, (size_t)(colon + 1 - p));
      strbuf_puts(b, REDACTED);
      p = at;
    }
    strbuf_putn(b, p, (size_t)(end - p));
    p = end;
  }
  strbuf_putn(b, p, strlen(p));
}

static bool secret_key_at(const char *s, size_t *keylen) {
  static const char *const keys[] = {"sslpassword", "password", "passwd",
                                     "pwd",         "secret",   "token"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    size_t n = strlen(keys[i]);
    if (strncasecmp(s, keys[i], n) == 0) {
      *keylen = n;
      return true;
    }
  }
  return false;
}

/* Pass 2: key=value secrets, in libpq's keyword form (values may be
 * single-quoted with backslash escapes) and in URL query strings. A key
 * counts only at the start or after a separator, so "mypassword=" or
 * "user_token=" style substrings inside other words are not matched; the
 * value runs to whitespace, '&', ';', ',' or the end. */
static void redact_keyvalues(const char *in, strbuf *b) {
  const char *p = in;
  const char *copied = in;
  while (*p) {
    size_t kl;
    bool at_word_start = p == in || strchr(" \t?&;,", p[-1]) != NULL;
    if (at_word_start && secret_key_at(p, &kl)) {
      const char *q = p + kl;
      while (*q == ' ' || *q == '\t') q++;
      if (*q == '=') {
        q++;
        while (*q == ' ' || *q == '\t') q++;
        strbuf_putn(b, copied, (size_t)(q - copied));
        strbuf_puts(b, REDACTED);
        if (*q == '\'') {
          q++;
          while (*q && *q != '\'') {
            if (*q == '\\' && q[1]) q++;
            q++;
          }
          if (*q == '\'') q++;
        } else {
          while (*q && !strchr(" \t&;,", *q)) q++;
        }
        p = copied = q;
        continue;
      }
    }
    p++;
  }
  strbuf_putn(b, copied, strlen(copied));
}

int cfg_redact(const char *in, char *out, size_t cap) {
  if (!out || cap == 0) return ERR_INVAL;
  out[0] = '\0';
  if (!in) return ERR_OK;
  strbuf a = {0}, b = {0};
  redact_userinfo(in, &a);
  if (!a.oom && a.p) redact_keyvalues(a.p, &b);
  int rc = ERR_OK;
  if (a.oom || b.oom || !b.p) {
    /* Never fall back to the raw text: it may hold a password. */
    str_copy(out, in[0] ? REDACTED : "", cap);
    rc = in[0] ? ERR_NOMEM : ERR_OK;
  } else if (str_copy(out, b.p, cap) >= cap) {
    rc = ERR_TOOBIG;
  }
  free(a.p);
  free(b.p);
  return rc;
}
