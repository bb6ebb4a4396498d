/*
 * pbjson.c - descriptor-driven protobuf-c <-> JSON (see pbjson.h for the
 * mapping, which is the public contract).
 *
 * Design. Both directions walk the message descriptor; a field is reached
 * through its offset and, for repeated fields, has_ flags and oneofs, its
 * quantifier_offset. One function per direction handles a single value of
 * a field's type at a "slot" (the field member itself, an element of a
 * repeated array, or the key/value member of a map entry), so singular,
 * repeated and map fields share every conversion and every check.
 *
 * Decoding builds the message in place with malloc, the allocator
 * protobuf-c uses when none is given, and keeps it valid for
 * protobuf_c_message_free_unpacked at every step: a sub-message or array
 * is linked into its parent (and a oneof case set) before it is filled,
 * arrays are zeroed (free skips NULL strings, bytes and messages) and
 * strings are replaced, never freed, because the value they replace is a
 * static default. So any error anywhere unwinds with one free of the top
 * message. A bad field is recorded with its path and skipped, and the walk
 * goes on so the caller gets every problem at once; only ERR_NOMEM stops
 * it.
 *
 * Numbers: strtod/snprintf are used on our own decimal text only, and
 * assume the "C" numeric locale (no service calls setlocale).
 */
#include "libs/pbjson/pbjson.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/utf8.h"
#define MEMBER(m, off) ((void *)((char *)(m) + (off)))
#define CMEMBER(m, off) ((const void *)((const char *)(m) + (off)))

/* ---- paths ------------------------------------------------------------ */

/* The path of the value being worked on, grown and shrunk as the walk goes
 * down and up. Bytes that do not fit are dropped and remembered in `cut`;
 * sanitising happens only when an error is recorded. */
typedef struct path {
  char buf[PBJSON_PATH_MAX];
  size_t len;
  bool cut;
} path;

typedef struct path_mark {
  size_t len;
  bool cut;
} path_mark;

static void path_append(path *p, const char *s, size_t n) {
  size_t room = sizeof p->buf - 1 - p->len;
  if (n > room) {
    n = room;
    p->cut = true;
  }
  memcpy(p->buf + p->len, s, n);
  p->len += n;
  p->buf[p->len] = '\0';
}

static path_mark path_push_name(path *p, const char *name, size_t n) {
  path_mark m = {p->len, p->cut};
  if (p->len > 0) path_append(p, ".", 1);
  path_append(p, name, n);
  return m;
}

static path_mark path_push_index(path *p, size_t i) {
  path_mark m = {p->len, p->cut};
  char b[32];
  int n = snprintf(b, sizeof b, "[%zu]", i);
  path_append(p, b, (size_t)n);
  return m;
}

static path_mark path_push_key(path *p, const char *key, size_t n) {
  path_mark m = {p->len, p->cut};
  path_append(p, "[\"", 2);
  path_append(p, key, n);
  path_append(p, "\"]", 2);
  return m;
}

static void path_pop(path *p, path_mark m) {
  p->len = m.len;
  p->cut = m.cut;
  p->buf[p->len] = '\0';
}

/* ---- UTF-8 ------------------------------------------------------------ */

/* One output piece of sanitised text at s[i]: a whole UTF-8 character, or
 * "?" for a control character or a byte that starts no valid sequence. */
static size_t sanitize_piece(const char *s, size_t n, size_t i,
                             const char **piece, size_t *plen) {
  unsigned char c = (unsigned char)s[i];
  size_t k = utf8_seq_len(s + i, n - i);
  if (k == 0 || c < 0x20 || c == 0x7f) {
    *piece = "?";
    *plen = 1;
    return k ? k : 1;
  }
  *piece = s + i;
  *plen = k;
  return k;
}

/* Copies s[0..n) into dst (capacity cap) as valid UTF-8 without control
 * characters, so error text can go into a JSON body as is. When it does
 * not fit, or `cut` says the source was already shortened, the copy ends
 * in "..." at a character boundary. */
static void text_copy(char *dst, size_t cap, const char *s, size_t n,
                      bool cut) {
  const char *piece;
  size_t plen, total = 0;
  for (size_t i = 0; i < n;) {
    i += sanitize_piece(s, n, i, &piece, &plen);
    total += plen;
  }
  size_t room = cap - 1;
  bool shorten = cut || total > room;
  if (shorten) room -= 3;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t adv = sanitize_piece(s, n, i, &piece, &plen);
    if (o + plen > room) break;
    memcpy(dst + o, piece, plen);
    o += plen;
    i += adv;
  }
  if (shorten) {
    memcpy(dst + o, "...", 3);
    o += 3;
  }
  dst[o] = '\0';
}

/* ---- context and errors ----------------------------------------------- */

typedef struct ctx {
  pbjson_opts o; /* with defaults filled in */
  pbjson_error *err;
  int first; /* code of the first recorded error, ERR_OK if none */
  path path;
} ctx;

static void ctx_init(ctx *c, const pbjson_opts *opts, pbjson_error *err) {
  memset(c, 0, sizeof *c);
  if (opts) c->o = *opts;
  if (c->o.max_json_bytes == 0)
    c->o.max_json_bytes = PBJSON_DEFAULT_MAX_JSON_BYTES;
  if (c->o.max_depth == 0) c->o.max_depth = PBJSON_DEFAULT_MAX_DEPTH;
  if (c->o.max_repeated == 0) c->o.max_repeated = PBJSON_DEFAULT_MAX_REPEATED;
  if (c->o.max_string == 0) c->o.max_string = PBJSON_DEFAULT_MAX_STRING;
  if (c->o.real_precision <= 0 || c->o.real_precision > 17)
    c->o.real_precision = 17;
  c->err = err;
  if (err) {
    err->code = ERR_OK;
    err->count = 0;
    err->truncated = false;
  }
}

/* Records an error at the current path; returns code so callers can write
 * `return field_error(...)`. */
static int field_error(ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int field_error(ctx *c, int code, const char *fmt, ...) {
  if (c->first == ERR_OK) c->first = code;
  if (!c->err) return code;
  if (c->err->count >= PBJSON_MAX_ERRORS) {
    c->err->truncated = true;
    return code;
  }
  pbjson_field_error *e = &c->err->errors[c->err->count++];
  char tmp[PBJSON_DESC_MAX * 2];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  size_t len = (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1;
  e->code = code;
  text_copy(e->path, sizeof e->path, c->path.buf, c->path.len, c->path.cut);
  text_copy(e->description, sizeof e->description, tmp, len,
            (size_t)n >= sizeof tmp);
  return code;
}

/* Sets err->code and passes rc through. */
static int finish(ctx *c, int rc) {
  if (c->err) c->err->code = rc;
  return rc;
}

/* ---- descriptor helpers ----------------------------------------------- */

const char *pbjson_type_name(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT32:
    return "int32";
  case PROTOBUF_C_TYPE_SINT32:
    return "sint32";
  case PROTOBUF_C_TYPE_SFIXED32:
    return "sfixed32";
  case PROTOBUF_C_TYPE_INT64:
    return "int64";
  case PROTOBUF_C_TYPE_SINT64:
    return "sint64";
  case PROTOBUF_C_TYPE_SFIXED64:
    return "sfixed64";
  case PROTOBUF_C_TYPE_UINT32:
    return "uint32";
  case PROTOBUF_C_TYPE_FIXED32:
    return "fixed32";
  case PROTOBUF_C_TYPE_UINT64:
    return "uint64";
  case PROTOBUF_C_TYPE_FIXED64:
    return "fixed64";
  case PROTOBUF_C_TYPE_FLOAT:
    return "float";
  case PROTOBUF_C_TYPE_DOUBLE:
    return "double";
  case PROTOBUF_C_TYPE_BOOL:
    return "bool";
  case PROTOBUF_C_TYPE_ENUM:
    return "enum";
  case PROTOBUF_C_TYPE_STRING:
    return "string";
  case PROTOBUF_C_TYPE_BYTES:
    return "bytes";
  case PROTOBUF_C_TYPE_MESSAGE:
    return "message";
  }
  return "?";
}

static bool is_int_type(ProtobufCType t) {
  return t <= PROTOBUF_C_TYPE_FIXED64;
}

static bool is_u64_type(ProtobufCType t) {
  return t == PROTOBUF_C_TYPE_UINT64 || t == PROTOBUF_C_TYPE_FIXED64;
}

/* Size of one element of a repeated field's array, as protobuf-c lays it
 * out (enums are C enums, stored as int). */
static size_t elem_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    return sizeof(int32_t);
  case PROTOBUF_C_TYPE_ENUM:
    return sizeof(int);
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return sizeof(int64_t);
  case PROTOBUF_C_TYPE_FLOAT:
    return sizeof(float);
  case PROTOBUF_C_TYPE_DOUBLE:
    return sizeof(double);
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
    return sizeof(char *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(ProtobufCMessage *);
  }
  return 0;
}

/* True for fields whose presence lives in a has_ flag (proto2 optional
 * scalars and bytes; oneof members use the case field instead). */
static bool has_flag(const ProtobufCFieldDescriptor *f) {
  return f->label == PROTOBUF_C_LABEL_OPTIONAL &&
         !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
         f->type != PROTOBUF_C_TYPE_STRING &&
         f->type != PROTOBUF_C_TYPE_MESSAGE;
}

/* protoc-c has no map flag: map<K, V> foo_bar becomes `repeated
 * FooBarEntry foo_bar` with FooBarEntry {K key = 1; V value = 2;} nested
 * in the parent. That exact shape and name is what protoc generates (and a
 * hand-written message with it is wire-identical to a map), so it is how a
 * map is recognised. */
static bool is_map_field(const ProtobufCMessageDescriptor *parent,
                         const ProtobufCFieldDescriptor *f) {
  if (f->label != PROTOBUF_C_LABEL_REPEATED ||
      f->type != PROTOBUF_C_TYPE_MESSAGE)
    return false;
  const ProtobufCMessageDescriptor *e = f->descriptor;
  if (e->n_fields != 2) return false;
  const ProtobufCFieldDescriptor *kf =
      protobuf_c_message_descriptor_get_field(e, 1);
  const ProtobufCFieldDescriptor *vf =
      protobuf_c_message_descriptor_get_field(e, 2);
  if (!kf || !vf || strcmp(kf->name, "key") != 0 ||
      strcmp(vf->name, "value") != 0 ||
      kf->label == PROTOBUF_C_LABEL_REPEATED ||
      vf->label == PROTOBUF_C_LABEL_REPEATED)
    return false;
  if (!is_int_type(kf->type) && kf->type != PROTOBUF_C_TYPE_BOOL &&
      kf->type != PROTOBUF_C_TYPE_STRING)
    return false;
  /* Expected full name: "<parent>.<CamelCaseField>Entry" (protoc's
   * MapEntryName: drop '_', upper-case the letter after it and the first). */
  char want[512];
  size_t n = strlen(parent->name);
  if (n + strlen(f->name) + 8 > sizeof want) return false;
  memcpy(want, parent->name, n);
  want[n++] = '.';
  bool up = true;
  for (const char *s = f->name; *s; s++) {
    if (*s == '_') {
      up = true;
      continue;
    }
    want[n++] = (up && *s >= 'a' && *s <= 'z') ? (char)(*s - 'a' + 'A') : *s;
    up = false;
  }
  memcpy(want + n, "Entry", 6);
  return strcmp(e->name, want) == 0;
}

/* The JSON spelling of enum value v (see pbjson_enum_style). buf must hold
 * 256 bytes; a name too long for it is used unchanged. */
static const char *enum_json_name(const ProtobufCEnumDescriptor *ed,
                                  const ProtobufCEnumValue *v, int style,
                                  char *buf) {
  if (style != PBJSON_ENUM_SHORT_LOWER) return v->name;
  /* UPPER_SNAKE of the enum's short name: "OrderStatus" -> "ORDER_STATUS",
   * "HTTPMethod" -> "HTTP_METHOD". */
  char prefix[256];
  size_t p = 0;
  const char *sn = ed->short_name;
  size_t sl = strlen(sn);
  for (size_t i = 0; i < sl && p + 3 < sizeof prefix; i++) {
    char ch = sn[i];
    bool upper = ch >= 'A' && ch <= 'Z';
    if (i > 0 && upper) {
      char prev = sn[i - 1], next = sn[i + 1];
      bool prev_lower_or_digit =
          (prev >= 'a' && prev <= 'z') || (prev >= '0' && prev <= '9');
      bool acronym_end =
          prev >= 'A' && prev <= 'Z' && next >= 'a' && next <= 'z';
      if (prev_lower_or_digit || acronym_end) prefix[p++] = '_';
    }
    prefix[p++] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
  }
  prefix[p++] = '_';
  const char *name = v->name;
  if (strncmp(name, prefix, p) == 0 && name[p] != '\0') name += p;
  size_t nl = strlen(name);
  if (nl >= 256) return v->name;
  for (size_t i = 0; i <= nl; i++)
    buf[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a')
                                                : name[i];
  return buf;
}

static const ProtobufCEnumValue *enum_lookup(const ProtobufCEnumDescriptor *ed,
                                             const char *s, int style) {
  if (style != PBJSON_ENUM_SHORT_LOWER)
    return protobuf_c_enum_descriptor_get_value_by_name(ed, s);
  char buf[256];
  for (unsigned i = 0; i < ed->n_values; i++)
    if (strcmp(enum_json_name(ed, &ed->values[i], style, buf), s) == 0)
      return &ed->values[i];
  return NULL;
}

/* "must be one of: A, B, C" (cut with "..." by field_error() when long). */
static int fail_enum(ctx *c, const ProtobufCEnumDescriptor *ed) {
  char list[PBJSON_DESC_MAX * 2];
  char buf[256];
  size_t n = 0;
  list[0] = '\0';
  for (unsigned i = 0; i < ed->n_values && n < sizeof list; i++) {
    int w = snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
                     enum_json_name(ed, &ed->values[i], c->o.enum_style, buf));
    if (w < 0) break;
    n += (size_t)w;
  }
  return field_error(c, ERR_INVAL, "must be one of: %s", list);
}

/* ---- integers ---------------------------------------------------------- */

/* Strict decimal: optional '-', then digits only; magnitude in *mag. */
enum dec_result { DEC_OK, DEC_BAD, DEC_RANGE };

static enum dec_result parse_dec(const char *s, size_t n, bool *neg,
                                 uint64_t *mag) {
  size_t i = 0;
  *neg = false;
  *mag = 0;
  if (n > 0 && s[0] == '-') {
    *neg = true;
    i = 1;
  }
  if (i == n) return DEC_BAD;
  bool over = false;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return DEC_BAD;
    unsigned d = (unsigned)(s[i] - '0');
    if (*mag > (UINT64_MAX - d) / 10)
      over = true;
    else
      *mag = *mag * 10 + d;
  }
  return over ? DEC_RANGE : DEC_OK;
}

/* Whether -mag (neg) or mag fits integer type t. */
static bool int_fits(ProtobufCType t, bool neg, uint64_t mag) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    return neg ? mag <= (uint64_t)INT32_MAX + 1 : mag <= INT32_MAX;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    return neg ? mag <= (uint64_t)INT64_MAX + 1 : mag <= INT64_MAX;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    return (!neg || mag == 0) && mag <= UINT32_MAX;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return !neg || mag == 0;
  default:
    return false;
  }
}

/* Stores a value int_fits() accepted. */
static void int_store(ProtobufCType t, bool neg, uint64_t mag, void *slot) {
  /* -(mag - 1) - 1 reaches INT64_MIN without overflowing. */
  int64_t sv = neg && mag > 0 ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
  switch (t) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    *(int32_t *)slot = (int32_t)sv;
    break;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    *(uint32_t *)slot = (uint32_t)mag;
    break;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    *(uint64_t *)slot = mag;
    break;
  default:
    *(int64_t *)slot = sv;
    break;
  }
}

static void json_int_split(json_int_t v, bool *neg, uint64_t *mag) {
  *neg = v < 0;
  *mag = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
}

/* ---- floats ------------------------------------------------------------ */

/* Narrows d to float; false when d lies beyond the float range. Values
 * just above FLT_MAX that round to it under round-to-nearest (the
 * shortest text of FLT_MAX, 3.4028235e38, is one) are accepted. */
static bool double_to_float(double d, float *f) {
  double limit = (double)FLT_MAX + ldexp(1.0, 103); /* FLT_MAX + half ulp */
  if (d >= limit || d <= -limit) return false;
  if (d > FLT_MAX)
    *f = FLT_MAX;
  else if (d < -FLT_MAX)
    *f = -FLT_MAX;
  else
    *f = (float)d;
  return true;
}

/* The double nearest to the shortest decimal that reads back as f, so a
 * float prints like the number that was stored ("0.1", not
 * "0.10000000149011612"). f is finite. */
static double float_widen(float f) {
  char b[40];
  for (int p = 1; p <= 9; p++) {
    snprintf(b, sizeof b, "%.*g", p, (double)f);
    double d = strtod(b, NULL);
    float back;
    if (double_to_float(d, &back) && back == f) return d;
  }
  return (double)f;
}

static bool special_real(const char *s, double *d) {
  if (strcmp(s, "NaN") == 0)
    *d = NAN;
  else if (strcmp(s, "Infinity") == 0)
    *d = INFINITY;
  else if (strcmp(s, "-Infinity") == 0)
    *d = -INFINITY;
  else
    return false;
  return true;
}

/* ---- decoding --------------------------------------------------------- */

static int decode_message(ctx *c, const ProtobufCMessageDescriptor *d,
                          const json_t *v, unsigned depth,
                          ProtobufCMessage **slot);

/* Copies a JSON string into a malloc'd C string after the checks every
 * string value gets. Returns ERR_OK, a recorded error, or ERR_NOMEM. */
static int take_string(ctx *c, const json_t *v, char **out) {
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  if (n > c->o.max_string)
    return field_error(c, ERR_TOOBIG, "longer than %zu bytes", c->o.max_string);
  if (memchr(s, '\0', n))
    return field_error(c, ERR_INVAL, "must not contain NUL characters");
  if (!utf8_valid(s, n))
    return field_error(c, ERR_INVAL, "must be valid UTF-8");
  char *copy = malloc(n + 1);
  if (!copy) return ERR_NOMEM;
  memcpy(copy, s, n);
  copy[n] = '\0';
  *out = copy;
  return ERR_OK;
}

/* Converts JSON value v (not null) to field f's type at slot. depth is the
 * depth of the message holding the field. */
static int decode_value(ctx *c, const ProtobufCFieldDescriptor *f,
                        const json_t *v, void *slot, unsigned depth) {
  ProtobufCType t = f->type;
  if (is_int_type(t)) {
    bool neg;
    uint64_t mag;
    if (json_is_integer(v)) {
      json_int_split(json_integer_value(v), &neg, &mag);
    } else if (is_u64_type(t) && json_is_string(v)) {
      enum dec_result r =
          parse_dec(json_string_value(v), json_string_length(v), &neg, &mag);
      if (r == DEC_RANGE)
        return field_error(c, ERR_INVAL, "out of range for %s",
                           pbjson_type_name(t));
      if (r == DEC_BAD)
        return field_error(c, ERR_INVAL,
                           "must be an integer or a string of decimal digits");
    } else {
      return field_error(c, ERR_INVAL, "must be an integer");
    }
    if (!int_fits(t, neg, mag))
      return field_error(c, ERR_INVAL, "out of range for %s",
                         pbjson_type_name(t));
    int_store(t, neg, mag, slot);
    return ERR_OK;
  }
  switch (t) {
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_DOUBLE: {
    double d;
    if (json_is_number(v)) {
      d = json_number_value(v);
    } else if (!json_is_string(v) ||
               strlen(json_string_value(v)) != json_string_length(v) ||
               !special_real(json_string_value(v), &d)) {
      return field_error(c, ERR_INVAL, "must be a number");
    }
    if (t == PROTOBUF_C_TYPE_DOUBLE) {
      *(double *)slot = d;
    } else if (isfinite(d)) {
      if (!double_to_float(d, (float *)slot))
        return field_error(c, ERR_INVAL, "out of range for float");
    } else {
      *(float *)slot = (float)d; /* NaN and infinities convert exactly */
    }
    return ERR_OK;
  }
  case PROTOBUF_C_TYPE_BOOL:
    if (!json_is_boolean(v))
      return field_error(c, ERR_INVAL, "must be true or false");
    *(protobuf_c_boolean *)slot = json_is_true(v);
    return ERR_OK;
  case PROTOBUF_C_TYPE_ENUM: {
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    const ProtobufCEnumValue *ev = NULL;
    if (json_is_string(v) &&
        strlen(json_string_value(v)) == json_string_length(v))
      ev = enum_lookup(ed, json_string_value(v), c->o.enum_style);
    if (!ev) return fail_enum(c, ed);
    *(int *)slot = ev->value;
    return ERR_OK;
  }
  case PROTOBUF_C_TYPE_STRING:
    if (!json_is_string(v))
      return field_error(c, ERR_INVAL, "must be a string");
    return take_string(c, v, (char **)slot);
  case PROTOBUF_C_TYPE_BYTES: {
    if (!json_is_string(v))
      return field_error(c, ERR_INVAL, "must be a base64 string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > c->o.max_string)
      return field_error(c, ERR_TOOBIG, "longer than %zu bytes",
                         c->o.max_string);
    ProtobufCBinaryData *bd = slot;
    if (n == 0) {
      bd->len = 0;
      bd->data = NULL;
      return ERR_OK;
    }
    size_t cap = n / 4 * 3 + 3;
    unsigned char *buf = malloc(cap);
    if (!buf) return ERR_NOMEM;
    size_t got = 0;
    /* b64_end NULL: the whole text must be base64, padding included. */
    if (sodium_base642bin(buf, cap, s, n, NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
      free(buf);
      return field_error(c, ERR_INVAL,
                         "must be base64 (standard alphabet, with padding)");
    }
    bd->len = got;
    bd->data = buf;
    return ERR_OK;
  }
  case PROTOBUF_C_TYPE_MESSAGE:
    return decode_message(c, f->descriptor, v, depth + 1,
                          (ProtobufCMessage **)slot);
  default:
    return field_error(c, ERR_INTERNAL, "unsupported field type");
  }
}

/* A map key (always a JSON object key, so always text) into key field kf. */
static int decode_map_key(ctx *c, const ProtobufCFieldDescriptor *kf,
                          const char *key, size_t n, void *slot) {
  if (n > c->o.max_string)
    return field_error(c, ERR_TOOBIG, "map key longer than %zu bytes",
                       c->o.max_string);
  if (kf->type == PROTOBUF_C_TYPE_STRING) {
    if (memchr(key, '\0', n))
      return field_error(c, ERR_INVAL,
                         "map key must not contain NUL characters");
    char *copy = malloc(n + 1);
    if (!copy) return ERR_NOMEM;
    memcpy(copy, key, n);
    copy[n] = '\0';
    *(char **)slot = copy;
    return ERR_OK;
  }
  if (kf->type == PROTOBUF_C_TYPE_BOOL) {
    if (n == 4 && memcmp(key, "true", 4) == 0)
      *(protobuf_c_boolean *)slot = 1;
    else if (n == 5 && memcmp(key, "false", 5) == 0)
      *(protobuf_c_boolean *)slot = 0;
    else
      return field_error(c, ERR_INVAL, "map key must be \"true\" or \"false\"");
    return ERR_OK;
  }
  bool neg;
  uint64_t mag;
  enum dec_result r = parse_dec(key, n, &neg, &mag);
  /* Only the canonical spelling ("7", not "07" or "-0"), so two JSON keys
   * can never name the same map key. */
  size_t digits = neg ? 1 : 0;
  if (r != DEC_BAD &&
      ((n - digits > 1 && key[digits] == '0') || (neg && mag == 0)))
    r = DEC_BAD;
  if (r == DEC_BAD)
    return field_error(c, ERR_INVAL,
                       "map key must be a decimal integer without leading "
                       "zeros");
  if (r == DEC_RANGE || !int_fits(kf->type, neg, mag))
    return field_error(c, ERR_INVAL, "map key out of range for %s",
                       pbjson_type_name(kf->type));
  int_store(kf->type, neg, mag, slot);
  return ERR_OK;
}

static void set_has(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
  if (has_flag(f)) *(protobuf_c_boolean *)MEMBER(m, f->quantifier_offset) = 1;
}

static int decode_map(ctx *c, ProtobufCMessage *m,
                      const ProtobufCFieldDescriptor *f, const json_t *v,
                      unsigned depth) {
  if (!json_is_object(v)) return field_error(c, ERR_INVAL, "must be an object");
  size_t n = json_object_size(v);
  if (n > c->o.max_repeated)
    return field_error(c, ERR_TOOBIG, "more than %zu entries",
                       c->o.max_repeated);
  if (n == 0) return ERR_OK;
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf =
      protobuf_c_message_descriptor_get_field(ed, 1);
  const ProtobufCFieldDescriptor *vf =
      protobuf_c_message_descriptor_get_field(ed, 2);
  ProtobufCMessage **arr = calloc(n, sizeof *arr);
  if (!arr) return ERR_NOMEM;
  *(ProtobufCMessage ***)MEMBER(m, f->offset) = arr;
  *(size_t *)MEMBER(m, f->quantifier_offset) = n;
  size_t i = 0;
  int first = ERR_OK;
  const char *key;
  size_t klen;
  json_t *val;
  json_object_keylen_foreach((json_t *)v, key, klen, val) {
    path_mark pm = path_push_key(&c->path, key, klen);
    ProtobufCMessage *e = malloc(ed->sizeof_message);
    if (!e) return ERR_NOMEM;
    protobuf_c_message_init(ed, e);
    arr[i++] = e;
    int rc = decode_map_key(c, kf, key, klen, MEMBER(e, kf->offset));
    if (rc == ERR_OK) set_has(e, kf);
    /* null value = the value type's default, like null for a field */
    if (rc != ERR_NOMEM && !json_is_null(val)) {
      int vrc = decode_value(c, vf, val, MEMBER(e, vf->offset), depth);
      if (vrc == ERR_OK) set_has(e, vf);
      if (rc == ERR_OK) rc = vrc;
    }
    path_pop(&c->path, pm);
    if (rc == ERR_NOMEM) return rc;
    if (first == ERR_OK) first = rc;
  }
  return first;
}

static int decode_repeated(ctx *c, ProtobufCMessage *m,
                           const ProtobufCFieldDescriptor *f, const json_t *v,
                           unsigned depth) {
  if (!json_is_array(v)) return field_error(c, ERR_INVAL, "must be an array");
  size_t n = json_array_size(v);
  if (n > c->o.max_repeated)
    return field_error(c, ERR_TOOBIG, "more than %zu elements",
                       c->o.max_repeated);
  if (n == 0) return ERR_OK;
  size_t es = elem_size(f->type);
  char *arr = calloc(n, es);
  if (!arr) return ERR_NOMEM;
  /* Linked and counted before filling: zeroed elements free as nothing. */
  *(void **)MEMBER(m, f->offset) = arr;
  *(size_t *)MEMBER(m, f->quantifier_offset) = n;
  int first = ERR_OK;
  for (size_t i = 0; i < n; i++) {
    path_mark pm = path_push_index(&c->path, i);
    const json_t *e = json_array_get(v, i);
    int rc = json_is_null(e) ? field_error(c, ERR_INVAL, "must not be null")
                             : decode_value(c, f, e, arr + i * es, depth);
    path_pop(&c->path, pm);
    if (rc == ERR_NOMEM) return rc;
    if (first == ERR_OK) first = rc;
  }
  return first;
}

static int decode_field(ctx *c, ProtobufCMessage *m,
                        const ProtobufCFieldDescriptor *f, const json_t *v,
                        unsigned depth) {
  void *member = MEMBER(m, f->offset);
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    if (is_map_field(m->descriptor, f)) return decode_map(c, m, f, v, depth);
    return decode_repeated(c, m, f, v, depth);
  }
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    uint32_t *which = MEMBER(m, f->quantifier_offset);
    if (*which != 0 && *which != f->id) {
      const ProtobufCFieldDescriptor *o =
          protobuf_c_message_descriptor_get_field(m->descriptor, *which);
      return field_error(
          c, ERR_INVAL, "cannot be set together with \"%s\" (one of them only)",
          o ? o->name : "?");
    }
    int rc = decode_value(c, f, v, member, depth);
    /* A sub-message is linked even when its fields had errors; the case
     * must name it so that freeing the parent frees it. */
    if (rc == ERR_OK ||
        (f->type == PROTOBUF_C_TYPE_MESSAGE && *(void **)member != NULL))
      *which = f->id;
    return rc;
  }
  int rc = decode_value(c, f, v, member, depth);
  if (rc == ERR_OK) set_has(m, f);
  return rc;
}

static int decode_message(ctx *c, const ProtobufCMessageDescriptor *d,
                          const json_t *v, unsigned depth,
                          ProtobufCMessage **slot) {
  if (!json_is_object(v)) return field_error(c, ERR_INVAL, "must be an object");
  if (depth > c->o.max_depth)
    return field_error(c, ERR_TOOBIG, "messages nested deeper than %u",
                       c->o.max_depth);
  ProtobufCMessage *m = malloc(d->sizeof_message);
  if (!m) return ERR_NOMEM;
  protobuf_c_message_init(d, m);
  *slot = m;
  int first = ERR_OK;
  const char *key;
  size_t klen;
  json_t *val;
  json_object_keylen_foreach((json_t *)v, key, klen, val) {
    path_mark pm = path_push_name(&c->path, key, klen);
    /* a key with an embedded NUL can name no field */
    const ProtobufCFieldDescriptor *f =
        strlen(key) == klen
            ? protobuf_c_message_descriptor_get_field_by_name(d, key)
            : NULL;
    int rc = ERR_OK;
    if (!f) {
      if (!c->o.allow_unknown_fields)
        rc = field_error(c, ERR_INVAL, "unknown field");
    } else if (!json_is_null(val)) {
      rc = decode_field(c, m, f, val, depth);
    }
    path_pop(&c->path, pm);
    if (rc == ERR_NOMEM) return rc;
    if (first == ERR_OK) first = rc;
  }
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->label != PROTOBUF_C_LABEL_REQUIRED || f->default_value != NULL)
      continue;
    const json_t *x = json_object_get(v, f->name);
    if (x && !json_is_null(x)) continue;
    path_mark pm = path_push_name(&c->path, f->name, strlen(f->name));
    int rc = field_error(c, ERR_INVAL, "is required");
    path_pop(&c->path, pm);
    if (first == ERR_OK) first = rc;
  }
  return first;
}

static int decode_top(ctx *c, const ProtobufCMessageDescriptor *desc,
                      const json_t *v, ProtobufCMessage **out) {
  ProtobufCMessage *m = NULL;
  int rc = decode_message(c, desc, v, 1, &m);
  if (rc == ERR_OK && c->first != ERR_OK) rc = c->first;
  if (rc != ERR_OK) {
    pbjson_free(m);
    return finish(c, rc);
  }
  *out = m;
  return finish(c, ERR_OK);
}

/* True when brackets in the text nest deeper than limit. jansson parses
 * recursively down to 2048 levels before pbjson sees anything; a proto
 * document needs at most two JSON levels per message level (an array or
 * map object around each element), so anything deeper is refused before
 * it can use that much stack on a small-stacked worker thread. */
static bool json_too_deep(const char *s, size_t n, size_t limit) {
  size_t depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (in_str) {
      if (ch == '\\')
        i++;
      else if (ch == '"')
        in_str = false;
    } else if (ch == '"') {
      in_str = true;
    } else if (ch == '{' || ch == '[') {
      if (++depth > limit) return true;
    } else if ((ch == '}' || ch == ']') && depth > 0) {
      depth--;
    }
  }
  return false;
}

int pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *json,
                  size_t len, const pbjson_opts *opts, ProtobufCMessage **out,
                  pbjson_error *err) {
  ctx c;
  ctx_init(&c, opts, err);
  if (out) *out = NULL;
  if (!desc || !out || (!json && len > 0))
    return finish(&c, field_error(&c, ERR_INVAL, "bad arguments"));
  if (len > c.o.max_json_bytes)
    return finish(&c,
                  field_error(&c, ERR_TOOBIG, "JSON text longer than %zu bytes",
                              c.o.max_json_bytes));
  size_t max_nesting = 2 * (size_t)c.o.max_depth + 1;
  if (json_too_deep(json, len, max_nesting))
    return finish(&c, field_error(&c, ERR_TOOBIG,
                                  "JSON nested deeper than %zu levels",
                                  max_nesting));
  json_error_t je;
  /* DECODE_ANY so a top-level scalar or array gets our "must be an
   * object" rather than jansson's parse error. jansson 2.14 may report an
   * allocation failure while parsing as a syntax error (or worse:
   * akheron/jansson#362); nothing to do about it here. */
  json_t *root = json_loadb(json ? json : "", len,
                            JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  if (!root) {
    if (json_error_code(&je) == json_error_out_of_memory)
      return finish(&c, ERR_NOMEM);
    return finish(&c, field_error(&c, ERR_INVAL,
                                  "invalid JSON at line %d, column %d: %s",
                                  je.line, je.column, je.text));
  }
  int rc = decode_top(&c, desc, root, out);
  json_decref(root);
  return rc;
}

int pbjson_decode_value(const ProtobufCMessageDescriptor *desc,
                        const json_t *value, const pbjson_opts *opts,
                        ProtobufCMessage **out, pbjson_error *err) {
  ctx c;
  ctx_init(&c, opts, err);
  if (out) *out = NULL;
  if (!desc || !out || !value)
    return finish(&c, field_error(&c, ERR_INVAL, "bad arguments"));
  return decode_top(&c, desc, value, out);
}

void pbjson_free(ProtobufCMessage *m) {
  if (m) protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- encoding --------------------------------------------------------- */

static int encode_message(ctx *c, const ProtobufCMessage *m, unsigned depth,
                          json_t **out);

static int encode_u64(uint64_t u, json_t **out) {
  if (u <= INT64_MAX) {
    *out = json_integer((json_int_t)u);
  } else {
    char b[32];
    int n = snprintf(b, sizeof b, "%" PRIu64, u);
    *out = json_stringn_nocheck(b, (size_t)n);
  }
  return *out ? ERR_OK : ERR_NOMEM;
}

static int encode_real(double d, json_t **out) {
  if (isnan(d))
    *out = json_string_nocheck("NaN");
  else if (isinf(d))
    *out = json_string_nocheck(d > 0 ? "Infinity" : "-Infinity");
  else
    *out = json_real(d);
  return *out ? ERR_OK : ERR_NOMEM;
}

/* One value of field f's type at slot (a NULL message gives null). depth
 * is the depth of the message holding the field. */
static int encode_value(ctx *c, const ProtobufCFieldDescriptor *f,
                        const void *slot, unsigned depth, json_t **out) {
  *out = NULL;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    *out = json_integer(*(const int32_t *)slot);
    break;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    *out = json_integer(*(const uint32_t *)slot);
    break;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    *out = json_integer(*(const int64_t *)slot);
    break;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return encode_u64(*(const uint64_t *)slot, out);
  case PROTOBUF_C_TYPE_FLOAT: {
    float fv = *(const float *)slot;
    return encode_real(isfinite(fv) ? float_widen(fv) : (double)fv, out);
  }
  case PROTOBUF_C_TYPE_DOUBLE:
    return encode_real(*(const double *)slot, out);
  case PROTOBUF_C_TYPE_BOOL:
    *out = json_boolean(*(const protobuf_c_boolean *)slot);
    break;
  case PROTOBUF_C_TYPE_ENUM: {
    int ev = *(const int *)slot;
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(ed, ev);
    char buf[256];
    if (v)
      *out = json_string_nocheck(enum_json_name(ed, v, c->o.enum_style, buf));
    else
      *out = json_integer(ev);
    break;
  }
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)slot;
    if (!s) s = "";
    size_t n = strlen(s);
    if (!utf8_valid(s, n))
      return field_error(c, ERR_INVAL, "is not valid UTF-8");
    *out = json_stringn_nocheck(s, n);
    break;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *bd = slot;
    if (bd->len == 0) {
      *out = json_string_nocheck("");
      break;
    }
    size_t cap =
        sodium_base64_encoded_len(bd->len, sodium_base64_VARIANT_ORIGINAL);
    char *b = malloc(cap);
    if (!b) return ERR_NOMEM;
    sodium_bin2base64(b, cap, bd->data, bd->len,
                      sodium_base64_VARIANT_ORIGINAL);
    *out = json_stringn_nocheck(b, cap - 1);
    free(b);
    break;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *sub = *(ProtobufCMessage *const *)slot;
    if (!sub)
      *out = json_null();
    else
      return encode_message(c, sub, depth + 1, out);
    break;
  }
  }
  return *out ? ERR_OK : ERR_NOMEM;
}

/* Map key as JSON object key text. */
static int encode_map_key(ctx *c, const ProtobufCFieldDescriptor *kf,
                          const void *slot, char *buf, size_t cap,
                          const char **key, size_t *klen) {
  switch (kf->type) {
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)slot;
    *key = s ? s : "";
    *klen = strlen(*key);
    if (!utf8_valid(*key, *klen))
      return field_error(c, ERR_INVAL, "map key is not valid UTF-8");
    return ERR_OK;
  }
  case PROTOBUF_C_TYPE_BOOL:
    *key = *(const protobuf_c_boolean *)slot ? "true" : "false";
    *klen = strlen(*key);
    return ERR_OK;
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    *klen = (size_t)snprintf(buf, cap, "%" PRId32, *(const int32_t *)slot);
    break;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    *klen = (size_t)snprintf(buf, cap, "%" PRIu32, *(const uint32_t *)slot);
    break;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    *klen = (size_t)snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)slot);
    break;
  default:
    *klen = (size_t)snprintf(buf, cap, "%" PRId64, *(const int64_t *)slot);
    break;
  }
  *key = buf;
  return ERR_OK;
}

static int encode_map(ctx *c, const ProtobufCMessage *m,
                      const ProtobufCFieldDescriptor *f, unsigned depth,
                      json_t **out) {
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf =
      protobuf_c_message_descriptor_get_field(ed, 1);
  const ProtobufCFieldDescriptor *vf =
      protobuf_c_message_descriptor_get_field(ed, 2);
  size_t n = *(const size_t *)CMEMBER(m, f->quantifier_offset);
  ProtobufCMessage *const *arr =
      *(ProtobufCMessage *const *const *)CMEMBER(m, f->offset);
  json_t *obj = json_object();
  if (!obj) return ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    const ProtobufCMessage *e = arr[i];
    if (!e) continue;
    char buf[32];
    const char *key;
    size_t klen;
    int rc = encode_map_key(c, kf, CMEMBER(e, kf->offset), buf, sizeof buf,
                            &key, &klen);
    json_t *jv = NULL;
    if (rc == ERR_OK) {
      path_mark pm = path_push_key(&c->path, key, klen);
      rc = encode_value(c, vf, CMEMBER(e, vf->offset), depth, &jv);
      path_pop(&c->path, pm);
    }
    /* setn_new takes jv even when it fails */
    if (rc == ERR_OK && json_object_setn_new_nocheck(obj, key, klen, jv) != 0)
      rc = ERR_NOMEM;
    if (rc != ERR_OK) {
      json_decref(obj);
      return rc;
    }
  }
  *out = obj;
  return ERR_OK;
}

static int encode_repeated(ctx *c, const ProtobufCMessage *m,
                           const ProtobufCFieldDescriptor *f, unsigned depth,
                           json_t **out) {
  size_t n = *(const size_t *)CMEMBER(m, f->quantifier_offset);
  const char *arr = *(const char *const *)CMEMBER(m, f->offset);
  size_t es = elem_size(f->type);
  json_t *a = json_array();
  if (!a) return ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *jv = NULL;
    path_mark pm = path_push_index(&c->path, i);
    int rc = encode_value(c, f, arr + i * es, depth, &jv);
    path_pop(&c->path, pm);
    if (rc == ERR_OK && json_array_append_new(a, jv) != 0) rc = ERR_NOMEM;
    if (rc != ERR_OK) {
      json_decref(a);
      return rc;
    }
  }
  *out = a;
  return ERR_OK;
}

/* The JSON for field f of m, or *out = NULL to leave the field out. */
static int encode_field(ctx *c, const ProtobufCMessage *m,
                        const ProtobufCFieldDescriptor *f, unsigned depth,
                        json_t **out) {
  const void *member = CMEMBER(m, f->offset);
  *out = NULL;
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return is_map_field(m->descriptor, f)
               ? encode_map(c, m, f, depth, out)
               : encode_repeated(c, m, f, depth, out);
  /* "Not set" exactly as protobuf_c_message_pack decides it, so the JSON
   * says null where the wire would carry nothing. */
  bool unset = false;
  if (has_flag(f)) {
    unset = !*(const protobuf_c_boolean *)CMEMBER(m, f->quantifier_offset);
  } else if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
             f->label != PROTOBUF_C_LABEL_REQUIRED) {
    unset = *(const void *const *)member == NULL;
  } else if (f->type == PROTOBUF_C_TYPE_STRING &&
             f->label == PROTOBUF_C_LABEL_OPTIONAL) {
    const void *p = *(const void *const *)member;
    unset = p == NULL || p == f->default_value;
  }
  if (unset) {
    if (c->o.omit_unset) return ERR_OK;
    *out = json_null();
    return *out ? ERR_OK : ERR_NOMEM;
  }
  return encode_value(c, f, member, depth, out);
}

/* True when f is the only member of its oneof. protoc-c 1.4 refuses
 * proto3 `optional`, so optional fields are written as one-member oneofs
 * ("oneof stock_present { int64 stock = 6; }"); on output such a field is
 * a field with presence (null when not set), not a choice. The members of
 * a oneof share its case member, so they are counted by quantifier_offset
 * (fields are in tag order; members need not be adjacent). */
static bool oneof_is_single(const ProtobufCMessageDescriptor *d,
                            const ProtobufCFieldDescriptor *f) {
  unsigned n = 0;
  for (unsigned i = 0; i < d->n_fields; i++)
    if ((d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        d->fields[i].quantifier_offset == f->quantifier_offset)
      n++;
  return n == 1;
}

static int encode_message(ctx *c, const ProtobufCMessage *m, unsigned depth,
                          json_t **out) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  if (depth > c->o.max_depth)
    return field_error(c, ERR_TOOBIG, "messages nested deeper than %u",
                       c->o.max_depth);
  json_t *obj = json_object();
  if (!obj) return ERR_NOMEM;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    json_t *jv = NULL;
    int rc = ERR_OK;
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)CMEMBER(m, f->quantifier_offset) != f->id) {
      /* Not the selected member: a choice's other members are left out;
       * a one-member oneof (an optional field) is unset, so null. */
      if (c->o.omit_unset || !oneof_is_single(d, f)) continue;
      jv = json_null();
      if (!jv) rc = ERR_NOMEM;
    } else {
      path_mark pm = path_push_name(&c->path, f->name, strlen(f->name));
      rc = encode_field(c, m, f, depth, &jv);
      path_pop(&c->path, pm);
    }
    if (rc == ERR_OK && jv &&
        json_object_set_new_nocheck(obj, f->name, jv) != 0)
      rc = ERR_NOMEM;
    if (rc != ERR_OK) {
      json_decref(obj);
      return rc;
    }
  }
  *out = obj;
  return ERR_OK;
}

int pbjson_encode(const ProtobufCMessage *m, const pbjson_opts *opts,
                  json_t **out, pbjson_error *err) {
  ctx c;
  ctx_init(&c, opts, err);
  if (out) *out = NULL;
  if (!m || !out)
    return finish(&c, field_error(&c, ERR_INVAL, "bad arguments"));
  return finish(&c, encode_message(&c, m, 1, out));
}

int pbjson_encode_string(const ProtobufCMessage *m, const pbjson_opts *opts,
                         char **out, size_t *len, pbjson_error *err) {
  if (out) *out = NULL;
  if (!out) {
    ctx c;
    ctx_init(&c, opts, err);
    return finish(&c, field_error(&c, ERR_INVAL, "bad arguments"));
  }
  json_t *j = NULL;
  int rc = pbjson_encode(m, opts, &j, err);
  if (rc != ERR_OK) return rc;
  ctx c;
  ctx_init(&c, opts, err);
  size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(c.o.real_precision);
  /* Sized first and written into our own malloc'd buffer, so the caller
   * frees with free() whatever allocator jansson was given. */
  size_t n = json_dumpb(j, NULL, 0, flags);
  char *buf = n ? malloc(n + 1) : NULL;
  if (!buf || json_dumpb(j, buf, n, flags) != n) {
    free(buf);
    json_decref(j);
    return finish(&c, ERR_NOMEM);
  }
  json_decref(j);
  buf[n] = '\0';
  *out = buf;
  if (len) *len = n;
  return finish(&c, ERR_OK);
}

/* ---- parameters -------------------------------------------------------- */

static int param_convert(ctx *c, const ProtobufCFieldDescriptor *f,
                         const char *text, size_t len, json_t **out) {
  if (memchr(text, '\0', len))
    return field_error(c, ERR_INVAL, "must not contain NUL characters");
  if (f->type == PROTOBUF_C_TYPE_MESSAGE)
    return field_error(c, ERR_INVAL, "cannot be set from a parameter");
  ProtobufCType t = f->type;
  if (is_int_type(t)) {
    bool neg;
    uint64_t mag;
    enum dec_result r = parse_dec(text, len, &neg, &mag);
    if (r == DEC_BAD) return field_error(c, ERR_INVAL, "must be an integer");
    if (r == DEC_RANGE || !int_fits(PROTOBUF_C_TYPE_INT64, neg, mag)) {
      if (r == DEC_OK && !neg && is_u64_type(t)) return encode_u64(mag, out);
      return field_error(c, ERR_INVAL, "out of range for %s",
                         pbjson_type_name(t));
    }
    int64_t v;
    int_store(PROTOBUF_C_TYPE_INT64, neg, mag, &v);
    *out = json_integer(v);
    return *out ? ERR_OK : ERR_NOMEM;
  }
  switch (t) {
  case PROTOBUF_C_TYPE_BOOL:
    if (len == 4 && memcmp(text, "true", 4) == 0)
      *out = json_true();
    else if (len == 5 && memcmp(text, "false", 5) == 0)
      *out = json_false();
    else
      return field_error(c, ERR_INVAL, "must be true or false");
    return ERR_OK;
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_DOUBLE: {
    char b[64];
    if (len == 0 || len >= sizeof b)
      return field_error(c, ERR_INVAL, "must be a number");
    memcpy(b, text, len);
    b[len] = '\0';
    double d;
    if (special_real(b, &d)) {
      *out = json_stringn_nocheck(text, len);
      return *out ? ERR_OK : ERR_NOMEM;
    }
    /* strtod alone would take spaces, hex, "inf" and "nan" too. */
    for (size_t i = 0; i < len; i++)
      if (!strchr("0123456789+-.eE", b[i]))
        return field_error(c, ERR_INVAL, "must be a number");
    char *end;
    d = strtod(b, &end);
    if (end != b + len) return field_error(c, ERR_INVAL, "must be a number");
    if (!isfinite(d))
      return field_error(c, ERR_INVAL, "out of range for %s",
                         pbjson_type_name(t));
    *out = json_real(d);
    return *out ? ERR_OK : ERR_NOMEM;
  }
  default: /* string, enum, bytes: checked by name or base64 at decode */
    if (!utf8_valid(text, len))
      return field_error(c, ERR_INVAL, "must be valid UTF-8");
    *out = json_stringn_nocheck(text, len);
    return *out ? ERR_OK : ERR_NOMEM;
  }
}

/* Finds the parameter's field; records "unknown field" or "cannot be set
 * from a parameter" (maps) at path field_name. */
static int param_field(ctx *c, const ProtobufCMessageDescriptor *desc,
                       const char *field_name,
                       const ProtobufCFieldDescriptor **f) {
  path_push_name(&c->path, field_name, strlen(field_name));
  *f = protobuf_c_message_descriptor_get_field_by_name(desc, field_name);
  if (!*f) return field_error(c, ERR_INVAL, "unknown field");
  if (is_map_field(desc, *f))
    return field_error(c, ERR_INVAL, "cannot be set from a parameter");
  return ERR_OK;
}

int pbjson_param_value(const ProtobufCMessageDescriptor *desc,
                       const char *field_name, const char *text, size_t len,
                       json_t **out, pbjson_error *err) {
  ctx c;
  ctx_init(&c, NULL, err);
  if (out) *out = NULL;
  if (!desc || !field_name || !out || (!text && len > 0))
    return finish(&c, field_error(&c, ERR_INVAL, "bad arguments"));
  const ProtobufCFieldDescriptor *f;
  int rc = param_field(&c, desc, field_name, &f);
  if (rc == ERR_OK) rc = param_convert(&c, f, text ? text : "", len, out);
  return finish(&c, rc);
}

int pbjson_param_set(json_t *obj, const ProtobufCMessageDescriptor *desc,
                     const char *field_name, const char *text, size_t len,
                     pbjson_error *err) {
  ctx c;
  ctx_init(&c, NULL, err);
  if (!desc || !field_name || (!text && len > 0))
    return finish(&c, field_error(&c, ERR_INVAL, "bad arguments"));
  const ProtobufCFieldDescriptor *f;
  int rc = param_field(&c, desc, field_name, &f);
  if (rc != ERR_OK) return finish(&c, rc);
  if (!json_is_object(obj))
    return finish(&c, field_error(&c, ERR_INVAL, "parameters need an object"));
  json_t *jv = NULL;
  rc = param_convert(&c, f, text ? text : "", len, &jv);
  if (rc != ERR_OK) return finish(&c, rc);
  json_t *cur = json_object_get(obj, f->name);
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    if (!cur || json_is_null(cur)) {
      json_t *a = json_array();
      /* append_new takes jv in every case, a NULL array included */
      if (json_array_append_new(a, jv) != 0) {
        json_decref(a);
        return finish(&c, ERR_NOMEM);
      }
      rc = json_object_set_new_nocheck(obj, f->name, a) ? ERR_NOMEM : ERR_OK;
      return finish(&c, rc);
    }
    if (!json_is_array(cur)) {
      json_decref(jv);
      return finish(&c,
                    field_error(&c, ERR_INVAL,
                                "conflicts with another value for this field"));
    }
    rc = json_array_append_new(cur, jv) ? ERR_NOMEM : ERR_OK;
    return finish(&c, rc);
  }
  if (!cur || json_is_null(cur)) {
    rc = json_object_set_new_nocheck(obj, f->name, jv) ? ERR_NOMEM : ERR_OK;
    return finish(&c, rc);
  }
  bool same = json_equal(cur, jv);
  json_decref(jv);
  if (!same)
    return finish(&c,
                  field_error(&c, ERR_INVAL,
                              "conflicts with another value for this field"));
  return finish(&c, ERR_OK);
}
