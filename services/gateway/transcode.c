/*
 * transcode.c - see transcode.h. The request side merges every source
 * into one jansson object and hands it to pbjson_decode_value once; the
 * reply side unpacks once, encodes through pbjson and serialises.
 */
#include "services/gateway/transcode.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pbjson_opts kOpts = {
    .enum_style = PBJSON_ENUM_SHORT_LOWER,
    .real_precision = 15,
};

static void safe_copy(char *dst, size_t cap, const char *src, size_t len) {
  bool cut = len >= cap;
  if (cut) len = cap - 4 > 0 ? cap - 4 : 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)src[i];
    dst[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
  }
  if (cut) {
    memcpy(dst + len, "...", 3);
    len += 3;
  }
  dst[len] = '\0';
}

void transcode_add_error(pbjson_error *err, int code, const char *path,
                         size_t plen, const char *description) {
  if (err->code == ERR_OK) err->code = code;
  if (err->count >= PBJSON_MAX_ERRORS) {
    err->truncated = true;
    return;
  }
  pbjson_field_error *e = &err->errors[err->count++];
  e->code = code;
  safe_copy(e->path, sizeof e->path, path, plen);
  safe_copy(e->description, sizeof e->description, description,
            strlen(description));
}

/* Appends src's errors to dst (pbjson clears its error on every call). */
static void merge_errors(pbjson_error *dst, const pbjson_error *src) {
  if (dst->code == ERR_OK) dst->code = src->code;
  for (size_t i = 0; i < src->count; i++) {
    if (dst->count >= PBJSON_MAX_ERRORS) {
      dst->truncated = true;
      return;
    }
    dst->errors[dst->count++] = src->errors[i];
  }
  if (src->truncated) dst->truncated = true;
}

int transcode_query_each(const char *query, size_t len, arena *a,
                         transcode_query_fn fn, void *arg, const char **bad_key,
                         size_t *bad_klen) {
  if (len > TRANSCODE_MAX_QUERY) return ERR_TOOBIG;
  /* Count first, so an oversized query is refused before any work. */
  size_t pairs = 0;
  for (size_t k = 0; k < len; k++)
    if (query[k] != '&' && (k + 1 == len || query[k + 1] == '&')) pairs++;
  if (pairs > TRANSCODE_MAX_QUERY_PARAMS) return ERR_TOOBIG;
  size_t i = 0;
  while (i < len) {
    size_t start = i;
    while (i < len && query[i] != '&') i++;
    size_t end = i;
    i++; /* past '&' */
    if (end == start) continue;
    const char *eq = memchr(query + start, '=', end - start);
    size_t klen = eq ? (size_t)(eq - (query + start)) : end - start;
    const char *vraw = eq ? eq + 1 : query + end;
    size_t vrawlen = eq ? (size_t)(query + end - vraw) : 0;
    char *k, *v;
    size_t kl, vl;
    int rc = route_pct_decode(query + start, klen, true, a, &k, &kl);
    if (rc == ERR_OK) rc = route_pct_decode(vraw, vrawlen, true, a, &v, &vl);
    if (rc != ERR_OK) {
      if (rc == ERR_INVAL) {
        if (bad_key) *bad_key = query + start;
        if (bad_klen) *bad_klen = klen;
      }
      return rc;
    }
    rc = fn(arg, k, kl, v, vl);
    if (rc != ERR_OK) return rc;
  }
  return ERR_OK;
}

static bool hidden(const route *r, const char *name, size_t len) {
  if (r->hidden == NULL) return false;
  for (const char *const *h = r->hidden; *h != NULL; h++)
    if (strlen(*h) == len && memcmp(*h, name, len) == 0) return true;
  return false;
}

static bool has_body(const route *r) {
  return strcmp(r->method, "GET") != 0 && strcmp(r->method, "DELETE") != 0;
}

typedef struct query_ctx {
  const route *r;
  json_t *obj;
  pbjson_error *err;
} query_ctx;

static int on_query(void *arg, const char *key, size_t klen, const char *val,
                    size_t vlen) {
  query_ctx *q = arg;
  if (has_body(q->r)) {
    transcode_add_error(q->err, ERR_INVAL, key, klen,
                        "query parameters are not accepted on this call");
    return ERR_OK;
  }
  if (hidden(q->r, key, klen) || memchr(key, '\0', klen) != NULL) {
    transcode_add_error(q->err, ERR_INVAL, key, klen, "unknown field");
    return ERR_OK;
  }
  pbjson_error e;
  if (pbjson_param_set(q->obj, q->r->request, key, val, vlen, &e) != ERR_OK) {
    if (e.code == ERR_NOMEM) return ERR_NOMEM;
    merge_errors(q->err, &e);
  }
  return ERR_OK;
}

/* Parses the body into a new object; records why not. */
static int parse_body(const char *body, size_t blen, json_t **obj,
                      pbjson_error *err) {
  *obj = NULL;
  /* Whitespace-only counts as no body: some clients send "\r\n". */
  size_t i = 0;
  while (i < blen && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' ||
                      body[i] == '\n'))
    i++;
  if (i == blen) {
    *obj = json_object();
    return *obj ? ERR_OK : ERR_NOMEM;
  }
  json_error_t je;
  json_t *v = json_loadb(body, blen, JSON_REJECT_DUPLICATES, &je);
  if (v == NULL) {
    char msg[PBJSON_DESC_MAX + JSON_ERROR_TEXT_LENGTH];
    snprintf(msg, sizeof msg, "malformed JSON: %s (line %d, column %d)",
             je.text, je.line, je.column);
    transcode_add_error(err, ERR_INVAL, "", 0, msg);
    return ERR_INVAL;
  }
  if (!json_is_object(v)) {
    json_decref(v);
    transcode_add_error(err, ERR_INVAL, "", 0, "must be a JSON object");
    return ERR_INVAL;
  }
  *obj = v;
  return ERR_OK;
}

/* The value of member `name` of object o as its canonical JSON text (see
 * route.json_text). null is left as is (not set). */
static int text_member(json_t *o, const char *name) {
  json_t *v = json_object_get(o, name);
  if (v == NULL || json_is_null(v) || !json_is_object(o)) return ERR_OK;
  char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  if (text == NULL) return ERR_NOMEM;
  int rc =
      json_object_set_new(o, name, json_string(text)) == 0 ? ERR_OK : ERR_NOMEM;
  free(text);
  return rc;
}

/* The reverse, for answers: member `name` of o, a string of JSON text
 * from the backend, becomes that JSON ("" becomes null). Text that does
 * not parse is left as the string. */
static int json_member(json_t *o, const char *name) {
  json_t *v = json_object_get(o, name);
  if (!json_is_string(v)) return ERR_OK;
  json_t *parsed =
      json_string_length(v) == 0
          ? json_null()
          : json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
  if (parsed == NULL) return ERR_OK;
  return json_object_set_new(o, name, parsed) == 0 ? ERR_OK : ERR_NOMEM;
}

/* For answers (route.unwrap): member `name` of o, an object around one
 * member (pbjson's rendering of a oneof of messages), becomes that
 * member's value; {} becomes null. Anything else is left alone. */
static int unwrap_member(json_t *o, const char *name) {
  json_t *v = json_object_get(o, name);
  if (!json_is_object(v) || json_object_size(v) > 1) return ERR_OK;
  void *it = json_object_iter(v);
  json_t *inner =
      it != NULL ? json_incref(json_object_iter_value(it)) : json_null();
  return json_object_set_new(o, name, inner) == 0 ? ERR_OK : ERR_NOMEM;
}

/* Applies fn to the members named by paths in obj (route.json_text's
 * form: "a[].b" or a top-level "b"): text_member for requests,
 * json_member and unwrap_member for answers. Shapes that do not match
 * (not an array, not objects) are left alone: pbjson reports them with
 * the field's path in a request. */
static int apply_paths(const char *const *paths, json_t *obj,
                       int (*fn)(json_t *, const char *)) {
  if (paths == NULL) return ERR_OK;
  for (const char *const *p = paths; *p != NULL; p++) {
    const char *sep = strstr(*p, "[].");
    if (sep == NULL) {
      int rc = fn(obj, *p);
      if (rc != ERR_OK) return rc;
      continue;
    }
    char arr[64];
    size_t n = (size_t)(sep - *p);
    if (n >= sizeof arr) return ERR_INVAL;
    memcpy(arr, *p, n);
    arr[n] = '\0';
    json_t *a = json_object_get(obj, arr);
    size_t i;
    json_t *el;
    json_array_foreach(a, i, el) {
      if (!json_is_object(el)) continue;
      int rc = fn(el, sep + 3);
      if (rc != ERR_OK) return rc;
    }
  }
  return ERR_OK;
}

int transcode_request(const route_match *match, const char *query, size_t qlen,
                      const char *body, size_t blen, arena *a,
                      ProtobufCMessage **out, json_t **fields,
                      pbjson_error *err) {
  *out = NULL;
  if (fields) *fields = NULL;
  memset(err, 0, sizeof *err);
  const route *r = match->route;
  json_t *obj = NULL;
  int rc = parse_body(body, blen, &obj, err);
  if (rc != ERR_OK) goto done;

  /* Hidden fields named in the body: reported, then removed so that the
   * decode below reports everything else without accepting them. */
  if (r->hidden != NULL) {
    for (const char *const *h = r->hidden; *h != NULL; h++) {
      if (json_object_get(obj, *h) != NULL) {
        transcode_add_error(err, ERR_INVAL, *h, strlen(*h), "unknown field");
        json_object_del(obj, *h);
      }
    }
  }
  rc = apply_paths(r->json_text, obj, text_member);
  if (rc != ERR_OK) goto done;
  for (size_t i = 0; i < match->nparams; i++) {
    pbjson_error e;
    const route_param *p = &match->params[i];
    if (pbjson_param_set(obj, r->request, p->name, p->value, p->len, &e) !=
        ERR_OK) {
      if (e.code == ERR_NOMEM) {
        rc = ERR_NOMEM;
        goto done;
      }
      merge_errors(err, &e);
    }
  }
  if (qlen > 0) {
    query_ctx q = {.r = r, .obj = obj, .err = err};
    const char *bad = NULL;
    size_t badlen = 0;
    rc = transcode_query_each(query, qlen, a, on_query, &q, &bad, &badlen);
    if (rc == ERR_INVAL) {
      transcode_add_error(err, ERR_INVAL, bad ? bad : "", bad ? badlen : 0,
                          "malformed percent-encoding");
    } else if (rc == ERR_TOOBIG) {
      transcode_add_error(err, ERR_INVAL, "", 0, "too many query parameters");
      rc = ERR_INVAL;
    } else if (rc != ERR_OK) {
      goto done;
    }
  }
  pbjson_error e;
  ProtobufCMessage *m = NULL;
  int drc = pbjson_decode_value(r->request, obj, &kOpts, &m, &e);
  if (drc == ERR_NOMEM) {
    rc = ERR_NOMEM;
    goto done;
  }
  if (drc != ERR_OK) merge_errors(err, &e);
  if (err->count > 0 || err->code != ERR_OK || drc != ERR_OK) {
    pbjson_free(m);
    rc = ERR_INVAL;
    if (err->count == 0)
      transcode_add_error(err, ERR_INVAL, "", 0, "invalid request");
    err->code = ERR_INVAL;
    goto done;
  }
  *out = m;
  if (fields) {
    *fields = obj;
    obj = NULL;
  }
  rc = ERR_OK;
done:
  json_decref(obj);
  if (rc != ERR_OK && rc != ERR_INVAL) err->code = rc;
  return rc;
}

static const ProtobufCFieldDescriptor *
field_by_name(const ProtobufCMessageDescriptor *d, const char *name) {
  for (unsigned i = 0; i < d->n_fields; i++)
    if (strcmp(d->fields[i].name, name) == 0) return &d->fields[i];
  return NULL;
}

int transcode_payload_value(const ProtobufCMessageDescriptor *desc,
                            const char *field, const uint8_t *payload,
                            size_t len, json_t **out) {
  *out = NULL;
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, payload);
  if (m == NULL) return ERR_PROTO;
  const ProtobufCMessage *sel = m;
  int rc = ERR_OK;
  if (field != NULL) {
    const ProtobufCFieldDescriptor *f = field_by_name(desc, field);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE) {
      rc = ERR_INVAL;
      goto done;
    }
    sel = *(const ProtobufCMessage *const *)((const char *)m + f->offset);
  }
  if (sel == NULL) {
    *out = json_object();
    rc = *out ? ERR_OK : ERR_NOMEM;
    goto done;
  }
  pbjson_error e;
  rc = pbjson_encode(sel, &kOpts, out, &e);
done:
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

/* Removes the member named by path from v (see route.omit). */
static void omit_path(json_t *v, const char *path, bool only_empty) {
  if (v == NULL) return;
  if (json_is_array(v)) {
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) omit_path(e, path, only_empty);
    return;
  }
  if (!json_is_object(v)) return;
  const char *dot = strchr(path, '.');
  if (dot == NULL) {
    json_t *m = json_object_get(v, path);
    if (m == NULL) return;
    if (only_empty && !json_is_null(m) &&
        !(json_is_string(m) && json_string_length(m) == 0))
      return;
    json_object_del(v, path);
    return;
  }
  char head[PBJSON_PATH_MAX];
  size_t n = (size_t)(dot - path);
  if (n >= sizeof head) return;
  memcpy(head, path, n);
  head[n] = '\0';
  if (n > 2 && head[n - 2] == '[' && head[n - 1] == ']') head[n - 2] = '\0';
  omit_path(json_object_get(v, head), dot + 1, only_empty);
}

int transcode_reply(const route *r, const uint8_t *payload, size_t len,
                    const char *extra_key, json_t *extra, char **json,
                    size_t *jlen) {
  *json = NULL;
  json_t *v = NULL;
  int rc =
      transcode_payload_value(r->response, r->reply_field, payload, len, &v);
  if (rc != ERR_OK) return rc;
  if (r->omit != NULL)
    for (const char *const *o = r->omit; *o != NULL; o++)
      omit_path(v, (*o)[0] == '?' ? *o + 1 : *o, (*o)[0] == '?');
  rc = apply_paths(r->json_text, v, json_member);
  if (rc == ERR_OK) rc = apply_paths(r->unwrap, v, unwrap_member);
  if (rc != ERR_OK) {
    json_decref(v);
    return rc;
  }
  if (extra_key != NULL &&
      json_object_set(v, extra_key, extra ? extra : json_null()) != 0) {
    json_decref(v);
    return ERR_NOMEM;
  }
  char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(v);
  if (s == NULL) return ERR_NOMEM;
  *json = s;
  *jlen = strlen(s);
  return ERR_OK;
}
