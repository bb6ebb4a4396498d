/*
 * pbjson.h - protobuf-c messages <-> JSON (jansson), driven only by
 * descriptors.
 *
 * The HTTP gateway turns a JSON request body into the request message of an
 * RPC and the response message back into JSON; the realtime service turns
 * events into JSON. Both go through this module, so the JSON shape of the
 * public API is decided here, once, for every message. Nothing is generated
 * per message: the walk reads ProtobufCMessageDescriptor and
 * ProtobufCFieldDescriptor (offsets, labels, quantifiers) and works for any
 * protoc-c output.
 *
 * THE MAPPING (both directions unless noted)
 *
 *   field names   the .proto field names, snake_case ("price_cents"); no
 *                 lowerCamel aliases are accepted.
 *   message       JSON object. Input must be an object; null = not set.
 *   repeated      JSON array of the element mapping. null = empty; null
 *                 elements are rejected.
 *   map<K, V>     JSON object (protoc-c represents a map as a repeated
 *                 "<Field>Entry" message nested in the parent; pbjson
 *                 recognises it by that shape). Keys are strings: integer
 *                 keys in canonical decimal ("42", "-7"; not "042" or
 *                 "-0", so no two JSON keys name one map key), bool keys
 *                 "true"/"false". Output order is the order of the
 *                 entries; a key repeated in the message keeps the last
 *                 value. A null map value means the value type's default.
 *   int32, sint32, sfixed32, uint32, fixed32
 *                 JSON integer. Input: reals (1.0, 1e3) are rejected, and
 *                 values outside the type's range are rejected.
 *   int64, sint64, sfixed64
 *                 JSON integer, full 64-bit precision (jansson's json_int_t
 *                 is long long). Caveat for clients: JavaScript numbers
 *                 lose precision above 2^53; ids are strings (UUIDs) and
 *                 money is integer cents, which stay far below.
 *   uint64, fixed64
 *                 JSON integer up to INT64_MAX. Above that (jansson cannot
 *                 hold or parse a larger integer literal) the value is
 *                 written as a decimal string ("18446744073709551615"), and
 *                 on input these two types also accept a decimal string of
 *                 digits. No other integer type accepts strings.
 *   float, double JSON number (integers accepted on input); a float out of
 *                 float range is rejected. Non-finite values are the strings
 *                 "NaN", "Infinity", "-Infinity" (the proto3 JSON forms;
 *                 JSON has no literal for them) in both directions.
 *                 Output precision: see pbjson_opts.real_precision.
 *   bool          true / false only.
 *   enum          a string naming the value (see pbjson_enum_style). Input
 *                 integers are rejected: clients only ever see names, and a
 *                 number in a request is far more often a mistake than
 *                 intent. Output of a value with no name (an open proto3
 *                 enum holding a number the schema does not know) is the
 *                 number, which decoding will then reject.
 *   string        JSON string, valid UTF-8, no NUL characters.
 *   bytes         base64, standard alphabet with padding (RFC 4648 4, the
 *                 proto3 JSON form), via libsodium. Input must be canonical
 *                 (correct padding, zero trailing bits, no whitespace).
 *
 * PRESENCE AND DEFAULTS (output)
 *
 *   Every field of the message is written, zero values and empty arrays and
 *   objects included, so clients see one stable shape per message:
 *   - proto3 scalars, strings, bytes, repeated and maps: always written
 *     (0, "", false, [], {}; an enum's zero value by name).
 *   - fields with presence that are not set are written as null: message
 *     fields with a NULL pointer, proto2 `optional` scalars whose has_ flag
 *     is 0, proto2 `optional string` that is NULL or still points at its
 *     declared default (protobuf-c cannot tell "set to the default" from
 *     "not set" there, and does not pack it either). (pbjson_opts.omit_unset
 *     leaves them out instead.) proto3 `optional` is not supported by
 *     protoc-c 1.4.1 (it refuses such files); a newer protoc-c emits it
 *     like proto2 optional (has_ flag), which this code already handles.
 *   - a oneof with exactly one member is how this project spells a proto3
 *     optional field ("oneof stock_present { int64 stock = 6; }"), so it
 *     is written like a field with presence: its value when the member is
 *     selected, null when the oneof is not set (left out under
 *     omit_unset). E.g. a product with unlimited stock is "stock": null.
 *   - oneof with two or more members: only the selected member is
 *     written; the other members are left out (writing null for every
 *     alternative would say nothing), and nothing is written when none
 *     is selected.
 *   - proto2 `required` fields are always written.
 *
 * INPUT RULES (pbjson_decode, pbjson_decode_value)
 *
 *   - The top level must be a JSON object. Text is parsed by jansson with
 *     duplicate keys rejected, after a size check against max_json_bytes;
 *     jansson also rejects invalid UTF-8 and \u0000 in strings.
 *   - Unknown field -> "unknown field" (unless opts.allow_unknown_fields).
 *   - null for any field = not set: the message keeps its default (proto2
 *     declared defaults, has_ = 0, NULL message, empty repeated).
 *   - Two members of one oneof set (non-null) -> rejected.
 *   - proto2 `required` fields without a declared default must be present.
 *   - Bounds: message nesting <= max_depth, elements per repeated field or
 *     map <= max_repeated, bytes per string (and per base64 text, and per
 *     map key) <= max_string. pbjson_decode also refuses text whose
 *     brackets nest deeper than 2 * max_depth + 1 before jansson parses
 *     it (a valid document never needs more; jansson itself would recurse
 *     2048 levels deep).
 *
 * ERRORS
 *
 *   Decoding keeps going after a bad field so a client learns about all of
 *   them at once (up to PBJSON_MAX_ERRORS, in document order). Each error
 *   names the field by path: "owner.email", "items[3].quantity",
 *   counts["k"] for a map value, "items[2].bogus" for an unknown field,
 *   "" for the document itself. Paths and descriptions are always valid
 *   UTF-8 without control characters (safe to put straight into a JSON
 *   error body); over-long ones are cut at a character boundary and end in
 *   "...".
 *
 * OWNERSHIP
 *
 *   A decoded message is allocated, with everything inside it, by the
 *   protobuf-c default allocator (malloc), exactly like
 *   protobuf_c_message_unpack(NULL, ...). Free it with pbjson_free(m) or,
 *   equivalently, protobuf_c_message_free_unpacked(m, NULL). It packs with
 *   protobuf_c_message_pack like any unpacked message.
 *
 * Thread safety: no global state; functions may run on many threads at
 * once on different data.
 */
#ifndef PBJSON_PBJSON_H
#define PBJSON_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#include "libs/base/err.h"

/* Defaults used when the matching pbjson_opts member is 0. */
#define PBJSON_DEFAULT_MAX_JSON_BYTES (1024 * 1024)
#define PBJSON_DEFAULT_MAX_DEPTH 32
#define PBJSON_DEFAULT_MAX_REPEATED 1000
#define PBJSON_DEFAULT_MAX_STRING (64 * 1024)

/* How enum values are spelled in JSON. */
enum pbjson_enum_style {
  /* The value's name exactly as in the .proto: "ORDER_STATUS_PENDING". */
  PBJSON_ENUM_NAME = 0,
  /* The name without the enum's UPPER_SNAKE prefix, lower-cased: for
   * `enum OrderStatus { ORDER_STATUS_PENDING = 1; }` that is "pending"
   * (the protobuf style guide prefixes every value with the enum name, the
   * public API speaks in short words). A name without the prefix is only
   * lower-cased. Input must use this spelling too. */
  PBJSON_ENUM_SHORT_LOWER = 1,
};

/* Options. NULL, or any member left 0, means the default. */
typedef struct pbjson_opts {
  size_t max_json_bytes; /* pbjson_decode: longer text -> ERR_TOOBIG */
  unsigned max_depth;    /* message nesting; the top message is depth 1 */
  size_t max_repeated;   /* elements in one repeated field or map */
  size_t max_string;     /* bytes in one string, base64 text or map key */
  int enum_style;        /* enum pbjson_enum_style */
  /* Decode: skip unknown fields instead of rejecting them. */
  bool allow_unknown_fields;
  /* Encode: leave out unset fields with presence instead of writing null. */
  bool omit_unset;
  /* Encode to text: significant digits for float and double, 1..17.
   * 0 = 17, which reads back as exactly the same double but shows binary
   * noise ("0.10000000000000001"); 15 prints what people typed for
   * human-scale values at the cost of exactness past 15 digits. Floats
   * are first widened to the shortest decimal that reads back as the same
   * float, so 0.1f prints as 0.1 at any precision <= 16. */
  int real_precision;
} pbjson_opts;

#define PBJSON_MAX_ERRORS 16
#define PBJSON_PATH_MAX 128
#define PBJSON_DESC_MAX 160

/* One problem with the input, named by the path of the field. */
typedef struct pbjson_field_error {
  int code;                          /* ERR_INVAL, or ERR_TOOBIG for bounds */
  char path[PBJSON_PATH_MAX];        /* "items[3].quantity"; "" = document */
  char description[PBJSON_DESC_MAX]; /* "must be an integer" */
} pbjson_field_error;

/* What went wrong. Filled by every function that takes one (may be NULL
 * there); cleared at the start of each call. */
typedef struct pbjson_error {
  int code;       /* the function's return value */
  size_t count;   /* entries used in errors[] */
  bool truncated; /* more errors were found than errors[] holds */
  pbjson_field_error errors[PBJSON_MAX_ERRORS];
} pbjson_error;

/* Parses `len` bytes of JSON text and builds a message of type `desc`.
 *
 * On ERR_OK *out is a new message the caller owns (free with pbjson_free).
 * On failure *out is NULL, nothing is left allocated, and err (if not NULL)
 * lists the problems:
 *   ERR_TOOBIG  len > max_json_bytes, or a depth/count/length bound was
 *               exceeded (the first error decides the return code);
 *   ERR_INVAL   malformed JSON (path "", jansson's message with line and
 *               column), top level not an object, unknown field, wrong
 *               type, out of range, bad enum name, bad base64, ...;
 *   ERR_NOMEM   an allocation failed (err->errors may hold field errors
 *               found before it).
 * `json` need not be NUL-terminated. */
int pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *json,
                  size_t len, const pbjson_opts *opts, ProtobufCMessage **out,
                  pbjson_error *err) WARN_UNUSED;

/* Like pbjson_decode, from a JSON value the caller already holds (the
 * gateway merges path and query parameters into the body object first).
 * `value` is only read; the caller keeps its reference. max_json_bytes is
 * not used. Strings must have been made by jansson's checking
 * constructors (valid UTF-8); embedded NULs are rejected. */
int pbjson_decode_value(const ProtobufCMessageDescriptor *desc,
                        const json_t *value, const pbjson_opts *opts,
                        ProtobufCMessage **out, pbjson_error *err) WARN_UNUSED;

/* Frees a message from pbjson_decode(_value) (or any message unpacked with
 * the default allocator). NULL is ignored. */
void pbjson_free(ProtobufCMessage *m);

/* Builds the JSON object for message m (see THE MAPPING). On ERR_OK *out
 * is a new reference the caller owns (json_decref). m is only read.
 * Errors: ERR_INVAL when m holds something JSON cannot carry (a string that
 * is not valid UTF-8; the path names it), ERR_TOOBIG when messages nest
 * deeper than max_depth, ERR_NOMEM. On failure *out is NULL. */
int pbjson_encode(const ProtobufCMessage *m, const pbjson_opts *opts,
                  json_t **out, pbjson_error *err) WARN_UNUSED;

/* pbjson_encode, then compact JSON text (no spaces, no newline), UTF-8 as
 * is. On ERR_OK *out is a NUL-terminated malloc'd string the caller frees
 * with free(), and *len (if len is not NULL) its length. Errors as
 * pbjson_encode; on failure *out is NULL. */
int pbjson_encode_string(const ProtobufCMessage *m, const pbjson_opts *opts,
                         char **out, size_t *len,
                         pbjson_error *err) WARN_UNUSED;

/* PATH AND QUERY PARAMETERS
 *
 * "/v1/orders/{id}" and "?limit=20&status=pending" arrive as text. Rather
 * than poke values into a built message, the gateway converts each one to
 * the JSON value the field expects and adds it to the body object, then
 * decodes the whole object once. So every value, from body, path or query,
 * passes the same type checks, range checks and bounds, and errors name
 * the field the same way ("limit": "out of range for int32"), and the
 * message is built by one code path with one ownership rule.
 *
 * Conversion by field type (only top-level fields; no dotted paths):
 *   string, enum, bytes   the text as a JSON string (enum names and base64
 *                         are checked when decoding);
 *   integer types         strict decimal ("-12"; no "+", spaces, hex or
 *                         fraction) as a JSON integer; uint64/fixed64
 *                         above INT64_MAX as a decimal string; ranges are
 *                         checked when decoding;
 *   float, double         a decimal number (strtod syntax, finite), or
 *                         "NaN", "Infinity", "-Infinity";
 *   bool                  "true" or "false";
 *   message, map          rejected ("cannot be set from a parameter").
 */

/* Converts the text of parameter `field_name` (text[0..len), not
 * necessarily NUL-terminated) for message type desc. On ERR_OK *out is a
 * new reference (json_decref). A repeated field gives the element value.
 * Errors (ERR_INVAL, path = field_name): unknown field, malformed number,
 * text that is not valid UTF-8 or holds NUL, unsupported type; ERR_NOMEM. */
int pbjson_param_value(const ProtobufCMessageDescriptor *desc,
                       const char *field_name, const char *text, size_t len,
                       json_t **out, pbjson_error *err) WARN_UNUSED;

/* Converts like pbjson_param_value and stores the result in object obj
 * under field_name: for a repeated field it is appended to the array
 * there (created if missing or null); for a singular field it is set when
 * the key is missing or null, accepted when an equal value is already
 * there, and rejected ("conflicts with another value for this field")
 * when a different one is. obj is changed only on ERR_OK. Errors as
 * pbjson_param_value, plus ERR_INVAL when obj is not an object or holds a
 * non-array for a repeated field. */
int pbjson_param_set(json_t *obj, const ProtobufCMessageDescriptor *desc,
                     const char *field_name, const char *text, size_t len,
                     pbjson_error *err) WARN_UNUSED;

/* The .proto name of a field type ("int32", "string", "bytes", ...;
 * "enum" and "message" for those kinds), "?" for anything else. Static. */
const char *pbjson_type_name(ProtobufCType t);

#endif
