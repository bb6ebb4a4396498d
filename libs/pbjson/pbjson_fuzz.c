/*
 * pbjson_fuzz.c - libFuzzer entry point for pbjson (clang only; see BUILD).
 *
 * Each input is decoded as a pbjson.test.Everything (every field type,
 * oneof, maps, recursion) with small bounds so the limits get reached.
 * Properties checked, beyond "no crash, no leak, no UB" (ASan/UBSan):
 *   - every error text is valid UTF-8 (jansson accepts it as a string);
 *   - a message that decodes encodes, the text decodes again, and both
 *     messages pack to the same bytes (the JSON round trip is exact);
 *   - the input split at the first '=' as a parameter name and value
 *     converts without trouble.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/err.h"
#include "libs/pbjson/pbjson.h"
#include "libs/pbjson/testdata/pbjson_test.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DESC (&pbjson__test__everything__descriptor)

static void check_error_text(const pbjson_error *e) {
  for (size_t i = 0; i < e->count; i++) {
    json_t *p = json_string(e->errors[i].path);
    json_t *d = json_string(e->errors[i].description);
    if (!p || !d) abort();
    json_decref(p);
    json_decref(d);
  }
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *n) {
  *n = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(*n ? *n : 1);
  if (!b) abort();
  if (protobuf_c_message_pack(m, b) != *n) abort();
  return b;
}

static void fuzz_param(const uint8_t *data, size_t size) {
  const uint8_t *eq = memchr(data, '=', size);
  if (!eq || (size_t)(eq - data) >= 64) return;
  char name[64];
  memcpy(name, data, (size_t)(eq - data));
  name[eq - data] = '\0';
  json_t *v = NULL;
  pbjson_error e;
  const char *val = (const char *)eq + 1;
  size_t vlen = size - (size_t)(eq - data) - 1;
  if (pbjson_param_value(&pbjson__test__scalars__descriptor, name, val, vlen,
                         &v, &e) == ERR_OK)
    json_decref(v);
  else
    check_error_text(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pbjson_opts o = {.max_depth = 8,
                   .max_repeated = 64,
                   .max_string = 256,
                   .max_json_bytes = 64 * 1024};
  ProtobufCMessage *m = NULL;
  pbjson_error e;
  fuzz_param(data, size);
  if (pbjson_decode(DESC, (const char *)data, size, &o, &m, &e) != ERR_OK) {
    check_error_text(&e);
    return 0;
  }
  char *text = NULL;
  size_t len = 0;
  if (pbjson_encode_string(m, &o, &text, &len, &e) != ERR_OK) abort();
  /* The output may be larger than the input (every field is written). */
  pbjson_opts again_o = o;
  again_o.max_json_bytes = SIZE_MAX;
  ProtobufCMessage *again = NULL;
  if (pbjson_decode(DESC, text, len, &again_o, &again, &e) != ERR_OK) abort();
  size_t n1, n2;
  uint8_t *b1 = pack(m, &n1);
  uint8_t *b2 = pack(again, &n2);
  if (n1 != n2 || memcmp(b1, b2, n1) != 0) abort();
  free(b1);
  free(b2);
  free(text);
  pbjson_free(again);
  pbjson_free(m);
  return 0;
}
