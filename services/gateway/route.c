/*
 * route.c - compiles the route rows into segment lists once at start-up
 * and matches request paths against them.
 *
 * The table is small (tens of rows) and read-only, so matching is a linear
 * scan comparing segments in place, without allocating: only the winner's
 * parameter values are percent-decoded into the request's arena. A trie
 * would only pay off at hundreds of routes.
 */
#include "services/gateway/route.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"

typedef struct seg {
  bool param;
  const char *text; /* literal bytes, or the parameter's field name */
  size_t len;
} seg;

typedef struct compiled {
  const route *row;
  size_t nseg;
  seg segs[ROUTE_MAX_SEGMENTS];
} compiled;

struct route_table {
  size_t n;
  compiled *rows;
};

static const char *const kMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};

static bool method_ok(const char *m) {
  if (m == NULL) return false;
  for (size_t i = 0; i < sizeof kMethods / sizeof kMethods[0]; i++)
    if (strcmp(m, kMethods[i]) == 0) return true;
  return false;
}

static bool literal_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '~' || c == '-';
}

static bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static bool is_hidden(const route *r, const char *name, size_t len) {
  if (r->hidden == NULL) return false;
  for (const char *const *h = r->hidden; *h != NULL; h++)
    if (strlen(*h) == len && memcmp(*h, name, len) == 0) return true;
  return false;
}

static const ProtobufCFieldDescriptor *
find_field(const ProtobufCMessageDescriptor *d, const char *name, size_t len) {
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (strlen(f->name) == len && memcmp(f->name, name, len) == 0) return f;
  }
  return NULL;
}

/* Splits a template into c->segs and checks it against the row. */
static int compile_row(const route *r, compiled *c) {
  const char *p = r->path;
  if (p == NULL || p[0] != '/') return ERR_INVAL;
  c->row = r;
  c->nseg = 0;
  size_t nparams = 0;
  p++;
  for (;;) {
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 0 || c->nseg == ROUTE_MAX_SEGMENTS) return ERR_INVAL;
    seg *s = &c->segs[c->nseg++];
    if (p[0] == '{') {
      if (len < 3 || p[len - 1] != '}') return ERR_INVAL;
      s->param = true;
      s->text = p + 1;
      s->len = len - 2;
      for (size_t i = 0; i < s->len; i++)
        if (!name_char(s->text[i])) return ERR_INVAL;
      const ProtobufCFieldDescriptor *f =
          find_field(r->request, s->text, s->len);
      if (f == NULL || f->label == PROTOBUF_C_LABEL_REPEATED ||
          f->type == PROTOBUF_C_TYPE_MESSAGE || is_hidden(r, s->text, s->len))
        return ERR_INVAL;
      for (size_t k = 0; k + 1 < c->nseg; k++)
        if (c->segs[k].param && c->segs[k].len == s->len &&
            memcmp(c->segs[k].text, s->text, s->len) == 0)
          return ERR_INVAL;
      if (++nparams > ROUTE_MAX_PARAMS) return ERR_INVAL;
    } else {
      s->param = false;
      s->text = p;
      s->len = len;
      for (size_t i = 0; i < len; i++)
        if (!literal_char(p[i])) return ERR_INVAL;
    }
    if (end == NULL) break;
    p = end + 1;
  }
  return ERR_OK;
}

/* NULL, or a singular message field of d. */
static bool reply_field_ok(const ProtobufCMessageDescriptor *d,
                           const char *name) {
  if (name == NULL) return true;
  const ProtobufCFieldDescriptor *f = find_field(d, name, strlen(name));
  return f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
         f->label != PROTOBUF_C_LABEL_REPEATED;
}

/* NULL, or a singular field of d of type t. */
static bool typed_field_ok(const ProtobufCMessageDescriptor *d,
                           const char *name, ProtobufCType t) {
  if (name == NULL) return true;
  const ProtobufCFieldDescriptor *f = find_field(d, name, strlen(name));
  return f != NULL && f->type == t && f->label != PROTOBUF_C_LABEL_REPEATED;
}

/* A ROUTE_STREAMED row has the fields its convention needs (route.h). */
static bool streamed_ok(const route *r) {
  if ((r->flags & ROUTE_STREAMED) == 0) return true;
  if (r->raw_body != NULL)
    return r->raw_reply == NULL &&
           typed_field_ok(r->request, "upload_id", PROTOBUF_C_TYPE_STRING) &&
           typed_field_ok(r->request, "size", PROTOBUF_C_TYPE_INT64) &&
           typed_field_ok(r->request, "offset", PROTOBUF_C_TYPE_INT64) &&
           typed_field_ok(r->response, "done", PROTOBUF_C_TYPE_BOOL);
  return r->raw_reply != NULL &&
         typed_field_ok(r->request, "offset", PROTOBUF_C_TYPE_INT64) &&
         typed_field_ok(r->request, "max", PROTOBUF_C_TYPE_INT32) &&
         typed_field_ok(r->response, "size", PROTOBUF_C_TYPE_INT64);
}

static int check_row(const route *r) {
  if (!method_ok(r->method) || r->service == NULL || r->service[0] == '\0' ||
      r->rpc == NULL || r->rpc[0] == '\0' || r->request == NULL ||
      r->response == NULL)
    return ERR_INVAL;
  if (r->status != 200 && r->status != 201 && r->status != 202 &&
      r->status != 204)
    return ERR_INVAL;
  if (r->min_role < ROUTE_ANYONE || r->min_role > ROUTE_OWNER) return ERR_INVAL;
  if (r->max_body > ROUTE_MAX_BODY_LIMIT) return ERR_INVAL;
  if (r->tenant != ROUTE_TENANT_NONE && r->tenant != ROUTE_TENANT_NAMED)
    return ERR_INVAL;
  if (!reply_field_ok(r->response, r->reply_field)) return ERR_INVAL;
  if (!typed_field_ok(r->request, r->raw_body, PROTOBUF_C_TYPE_BYTES) ||
      !typed_field_ok(r->response, r->raw_reply, PROTOBUF_C_TYPE_BYTES) ||
      !typed_field_ok(r->response, r->existed_field, PROTOBUF_C_TYPE_BOOL) ||
      (r->raw_reply != NULL && (r->reply_field != NULL || r->extra != NULL)) ||
      !streamed_ok(r))
    return ERR_INVAL;
  if (r->extra != NULL) {
    const route_extra *x = r->extra;
    if (r->status == 204 || x->key == NULL || x->key[0] == '\0' ||
        x->service == NULL || x->service[0] == '\0' || x->rpc == NULL ||
        x->rpc[0] == '\0' || x->request == NULL || x->response == NULL ||
        !reply_field_ok(x->response, x->reply_field))
      return ERR_INVAL;
  }
  if (r->omit != NULL)
    for (const char *const *o = r->omit; *o != NULL; o++)
      if ((*o)[0] == '\0' || ((*o)[0] == '?' && (*o)[1] == '\0'))
        return ERR_INVAL;
  if (r->hidden != NULL)
    for (const char *const *h = r->hidden; *h != NULL; h++)
      if (find_field(r->request, *h, strlen(*h)) == NULL) return ERR_INVAL;
  if (r->login_key != NULL) {
    const ProtobufCFieldDescriptor *f =
        find_field(r->request, r->login_key, strlen(r->login_key));
    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING ||
        f->label == PROTOBUF_C_LABEL_REPEATED)
      return ERR_INVAL;
  }
  return ERR_OK;
}

static bool same_shape(const compiled *a, const compiled *b) {
  if (a->nseg != b->nseg) return false;
  for (size_t i = 0; i < a->nseg; i++) {
    if (a->segs[i].param != b->segs[i].param) return false;
    if (!a->segs[i].param &&
        (a->segs[i].len != b->segs[i].len ||
         memcmp(a->segs[i].text, b->segs[i].text, a->segs[i].len) != 0))
      return false;
  }
  return true;
}

int route_table_new(const route *rows, size_t n, route_table **out,
                    size_t *bad_row) {
  *out = NULL;
  if (rows == NULL && n > 0) return ERR_INVAL;
  route_table *t = calloc(1, sizeof *t);
  if (t == NULL) return ERR_NOMEM;
  t->rows = calloc(n ? n : 1, sizeof *t->rows);
  if (t->rows == NULL) {
    free(t);
    return ERR_NOMEM;
  }
  int rc = ERR_OK;
  for (size_t i = 0; i < n; i++) {
    rc = check_row(&rows[i]);
    if (rc == ERR_OK) rc = compile_row(&rows[i], &t->rows[i]);
    if (rc == ERR_OK)
      for (size_t k = 0; k < i; k++)
        if (strcmp(rows[k].method, rows[i].method) == 0 &&
            same_shape(&t->rows[k], &t->rows[i]))
          rc = ERR_EXISTS;
    if (rc != ERR_OK) {
      if (bad_row != NULL) *bad_row = i;
      route_table_free(t);
      return rc;
    }
  }
  t->n = n;
  *out = t;
  return ERR_OK;
}

void route_table_free(route_table *t) {
  if (t == NULL) return;
  free(t->rows);
  free(t);
}

size_t route_table_count(const route_table *t) { return t->n; }

const route *route_table_row(const route_table *t, size_t i) {
  return i < t->n ? t->rows[i].row : NULL;
}

typedef struct span {
  const char *p;
  size_t len;
} span;

/* Splits path into segments; false when it cannot match any template. */
static bool split_path(const char *path, size_t len, span *segs, size_t *n) {
  if (len == 0 || len > ROUTE_MAX_PATH || path[0] != '/') return false;
  *n = 0;
  size_t i = 1;
  for (;;) {
    size_t start = i;
    while (i < len && path[i] != '/') i++;
    if (*n == ROUTE_MAX_SEGMENTS) return false;
    segs[*n].p = path + start;
    segs[*n].len = i - start;
    (*n)++;
    if (i >= len) break;
    i++; /* the '/' */
  }
  return true;
}

static bool matches(const compiled *c, const span *segs, size_t n) {
  if (c->nseg != n) return false;
  for (size_t i = 0; i < n; i++) {
    const seg *s = &c->segs[i];
    if (segs[i].len == 0) return false;
    if (s->param) continue;
    if (s->len != segs[i].len || memcmp(s->text, segs[i].p, s->len) != 0)
      return false;
  }
  return true;
}

/* True when a is more specific than b: at the first segment where one is a
 * literal and the other a parameter, a has the literal. */
static bool more_specific(const compiled *a, const compiled *b) {
  for (size_t i = 0; i < a->nseg && i < b->nseg; i++) {
    if (a->segs[i].param != b->segs[i].param) return !a->segs[i].param;
  }
  return false;
}

int route_pct_decode(const char *s, size_t len, bool plus_is_space, arena *a,
                     char **out, size_t *outlen) {
  char *d = arena_alloc(a, len + 1);
  if (d == NULL) return ERR_NOMEM;
  size_t k = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '+' && plus_is_space) {
      c = ' ';
    } else if (c == '%') {
      if (i + 2 >= len) return ERR_INVAL;
      int hi = str_hex_digit(s[i + 1]), lo = str_hex_digit(s[i + 2]);
      if (hi < 0 || lo < 0) return ERR_INVAL;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return ERR_INVAL;
    d[k++] = c;
  }
  d[k] = '\0';
  *out = d;
  *outlen = k;
  return ERR_OK;
}

static void allow_add(char *allow, const char *method) {
  size_t used = strlen(allow);
  size_t mlen = strlen(method);
  /* Already listed? Methods are whole words separated by ", ". */
  const char *p = allow;
  while ((p = strstr(p, method)) != NULL) {
    bool start = p == allow || p[-1] == ' ';
    bool end = p[mlen] == '\0' || p[mlen] == ',';
    if (start && end) return;
    p += mlen;
  }
  size_t need = (used ? 2 : 0) + mlen + 1;
  if (used + need > ROUTE_ALLOW_MAX) return;
  if (used) {
    memcpy(allow + used, ", ", 2);
    used += 2;
  }
  memcpy(allow + used, method, mlen + 1);
}

int route_match_path(const route_table *t, const char *method, const char *path,
                     size_t len, arena *a, route_match *m) {
  m->result = ROUTE_NOT_FOUND;
  m->route = NULL;
  m->nparams = 0;
  m->allow[0] = '\0';
  m->bad_param = NULL;
  span segs[ROUTE_MAX_SEGMENTS];
  size_t n;
  if (!split_path(path, len, segs, &n)) return ERR_OK;
  if (strcmp(method, "HEAD") == 0) method = "GET";
  const compiled *best = NULL;
  bool any = false;
  for (size_t i = 0; i < t->n; i++) {
    const compiled *c = &t->rows[i];
    if (!matches(c, segs, n)) continue;
    any = true;
    allow_add(m->allow, c->row->method);
    if (strcmp(c->row->method, method) != 0) continue;
    if (best == NULL || more_specific(c, best)) best = c;
  }
  if (best == NULL) {
    m->result = any ? ROUTE_METHOD_NOT_ALLOWED : ROUTE_NOT_FOUND;
    return ERR_OK;
  }
  for (size_t i = 0; i < best->nseg; i++) {
    if (!best->segs[i].param) continue;
    route_param *p = &m->params[m->nparams];
    char *v;
    size_t vlen;
    /* The field name is not NUL-terminated inside the template; the
     * field descriptor's name is, and it is the same text. */
    const char *name = NULL;
    for (unsigned f = 0; f < best->row->request->n_fields; f++) {
      const char *fn = best->row->request->fields[f].name;
      if (strlen(fn) == best->segs[i].len &&
          memcmp(fn, best->segs[i].text, best->segs[i].len) == 0)
        name = fn;
    }
    int rc = route_pct_decode(segs[i].p, segs[i].len, false, a, &v, &vlen);
    if (rc != ERR_OK) {
      m->bad_param = name;
      return rc;
    }
    p->name = name;
    p->value = v;
    p->len = vlen;
    m->nparams++;
  }
  m->result = ROUTE_FOUND;
  m->route = best->row;
  return ERR_OK;
}

static const char *const kRoleNames[] = {"anyone", "customer", "staff", "admin",
                                         "owner"};

int route_role_parse(const char *name) {
  if (name == NULL) return -1;
  /* A sync device's token ranks as staff (libs/authn/authn_caller.h). */
  if (strcmp(name, "device") == 0) return ROUTE_STAFF;
  for (int i = ROUTE_CUSTOMER; i <= ROUTE_OWNER; i++)
    if (strcmp(name, kRoleNames[i]) == 0) return i;
  return -1;
}

const char *route_role_name(int role) {
  if (role < ROUTE_ANYONE || role > ROUTE_OWNER) return "?";
  return kRoleNames[role];
}
