/* pbjson_test.c - unit tests for protobuf-c <-> JSON (pbjson.h): the
 * mapping of every type, error paths, bounds, parameters, ownership. Run
 * under --config=asan too: LeakSanitizer checks every error path frees
 * what it built. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/err.h"
#include "libs/pbjson/pbjson.h"
#include "libs/pbjson/testdata/pbjson_test.pb-c.h"
#include "libs/pbjson/testdata/pbjson_test2.pb-c.h"

#define EVERYTHING (&pbjson__test__everything__descriptor)
#define SCALARS (&pbjson__test__scalars__descriptor)
#define LEGACY (&pbjson__test2__legacy__descriptor)
#define NODE (&pbjson__test__node__descriptor)
#define OPTIONALS (&pbjson__test__optionals__descriptor)

/* ---- helpers ----------------------------------------------------------- */

static void dump_errors(const pbjson_error *e) {
  for (size_t i = 0; i < e->count; i++)
    fprintf(stderr, "  [%zu] %s: %s\n", i, e->errors[i].path,
            e->errors[i].description);
}

static ProtobufCMessage *dec_opts(const ProtobufCMessageDescriptor *d,
                                  const char *json, const pbjson_opts *o) {
  ProtobufCMessage *m = NULL;
  pbjson_error e;
  int rc = pbjson_decode(d, json, strlen(json), o, &m, &e);
  if (rc != ERR_OK) dump_errors(&e);
  ck_assert_msg(rc == ERR_OK, "decode failed (%s) for %s", err_str(rc), json);
  ck_assert_int_eq(e.code, ERR_OK);
  ck_assert_uint_eq(e.count, 0);
  ck_assert_ptr_nonnull(m);
  return m;
}

static ProtobufCMessage *dec(const ProtobufCMessageDescriptor *d,
                             const char *json) {
  return dec_opts(d, json, NULL);
}

/* Decoding must fail with `code`; returns the error for more checks. */
static pbjson_error dec_fail_opts(const ProtobufCMessageDescriptor *d,
                                  const char *json, size_t len,
                                  const pbjson_opts *o, int code) {
  ProtobufCMessage *m = (ProtobufCMessage *)1;
  pbjson_error e;
  int rc = pbjson_decode(d, json, len, o, &m, &e);
  ck_assert_msg(rc == code, "want %s, got %s for %s", err_str(code),
                err_str(rc), json);
  ck_assert_int_eq(e.code, code);
  ck_assert_ptr_null(m);
  return e;
}

static pbjson_error dec_fail(const ProtobufCMessageDescriptor *d,
                             const char *json, int code) {
  return dec_fail_opts(d, json, strlen(json), NULL, code);
}

/* The single error of a document with one problem. */
static void expect_one(const ProtobufCMessageDescriptor *d, const char *json,
                       int code, const char *path, const char *desc) {
  pbjson_error e = dec_fail(d, json, code);
  if (e.count != 1) dump_errors(&e);
  ck_assert_uint_eq(e.count, 1);
  ck_assert_str_eq(e.errors[0].path, path);
  ck_assert_msg(strstr(e.errors[0].description, desc) != NULL,
                "description \"%s\" lacks \"%s\" (%s)", e.errors[0].description,
                desc, json);
  ck_assert_int_eq(e.errors[0].code, code);
}

static char *enc_opts(const ProtobufCMessage *m, const pbjson_opts *o) {
  char *s = NULL;
  size_t n = 0;
  pbjson_error e;
  int rc = pbjson_encode_string(m, o, &s, &n, &e);
  if (rc != ERR_OK) dump_errors(&e);
  ck_assert_int_eq(rc, ERR_OK);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(n, strlen(s));
  return s;
}

static char *enc(const ProtobufCMessage *m) { return enc_opts(m, NULL); }

static void expect_json(const ProtobufCMessage *m, const pbjson_opts *o,
                        const char *want) {
  char *s = enc_opts(m, o);
  ck_assert_str_eq(s, want);
  free(s);
}

/* decode(json) then encode must give `want` exactly. */
static void expect_reencode(const ProtobufCMessageDescriptor *d,
                            const char *json, const pbjson_opts *o,
                            const char *want) {
  ProtobufCMessage *m = dec_opts(d, json, o);
  expect_json(m, o, want);
  pbjson_free(m);
}

/* ---- the mapping ------------------------------------------------------- */

START_TEST(decodes_every_scalar_type) {
  const char *json =
      "{\"i32\":-7,\"s32\":-8,\"sf32\":-9,\"i64\":-10,\"s64\":-11,"
      "\"sf64\":-12,\"u32\":13,\"f32\":14,\"u64\":15,\"f64\":16,"
      "\"fl\":1.5,\"db\":-2.25,\"b\":true,\"color\":\"COLOR_DARK_BLUE\","
      "\"str\":\"h\\u00e9llo\",\"by\":\"aGVsbG8=\"}";
  Pbjson__Test__Scalars *s = (Pbjson__Test__Scalars *)dec(SCALARS, json);
  ck_assert_int_eq(s->i32, -7);
  ck_assert_int_eq(s->s32, -8);
  ck_assert_int_eq(s->sf32, -9);
  ck_assert_int_eq(s->i64, -10);
  ck_assert_int_eq(s->s64, -11);
  ck_assert_int_eq(s->sf64, -12);
  ck_assert_uint_eq(s->u32, 13);
  ck_assert_uint_eq(s->f32, 14);
  ck_assert_uint_eq(s->u64, 15);
  ck_assert_uint_eq(s->f64, 16);
  ck_assert(s->fl == 1.5f);
  ck_assert(s->db == -2.25);
  ck_assert_int_eq(s->b, 1);
  ck_assert_int_eq(s->color, PBJSON__TEST__COLOR__COLOR_DARK_BLUE);
  ck_assert_str_eq(s->str, "h\xc3\xa9llo");
  ck_assert_uint_eq(s->by.len, 5);
  ck_assert_mem_eq(s->by.data, "hello", 5);
  expect_json(&s->base, NULL,
              "{\"i32\":-7,\"s32\":-8,\"sf32\":-9,\"i64\":-10,\"s64\":-11,"
              "\"sf64\":-12,\"u32\":13,\"f32\":14,\"u64\":15,\"f64\":16,"
              "\"fl\":1.5,\"db\":-2.25,\"b\":true,"
              "\"color\":\"COLOR_DARK_BLUE\",\"str\":\"h\xc3\xa9llo\","
              "\"by\":\"aGVsbG8=\"}");
  pbjson_free(&s->base);
}
END_TEST

START_TEST(encodes_zero_values_so_every_field_is_present) {
  Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
  expect_json(&s.base, NULL,
              "{\"i32\":0,\"s32\":0,\"sf32\":0,\"i64\":0,\"s64\":0,"
              "\"sf64\":0,\"u32\":0,\"f32\":0,\"u64\":0,\"f64\":0,"
              "\"fl\":0.0,\"db\":0.0,\"b\":false,"
              "\"color\":\"COLOR_UNSPECIFIED\",\"str\":\"\",\"by\":\"\"}");
  /* Unset messages are null, repeated [] and maps {}, the unset oneof
   * is left out. */
  Pbjson__Test__Everything ev = PBJSON__TEST__EVERYTHING__INIT;
  expect_json(&ev.base, NULL,
              "{\"scalars\":null,\"owner\":null,\"items\":[],\"r_i32\":[],"
              "\"r_i64\":[],\"r_u64\":[],\"r_fl\":[],\"r_db\":[],\"r_b\":[],"
              "\"r_color\":[],\"r_str\":[],\"r_by\":[],\"counts\":{},"
              "\"names\":{},\"by_flag\":{},\"colors\":{},\"node\":null,"
              "\"status\":\"ORDER_STATUS_UNSPECIFIED\"}");
  /* omit_unset leaves out only fields with presence. */
  pbjson_opts o = {.omit_unset = true};
  expect_json(&ev.base, &o,
              "{\"items\":[],\"r_i32\":[],\"r_i64\":[],\"r_u64\":[],"
              "\"r_fl\":[],\"r_db\":[],\"r_b\":[],\"r_color\":[],"
              "\"r_str\":[],\"r_by\":[],\"counts\":{},\"names\":{},"
              "\"by_flag\":{},\"colors\":{},"
              "\"status\":\"ORDER_STATUS_UNSPECIFIED\"}");
}
END_TEST

START_TEST(int64_extremes_round_trip_with_full_precision) {
  const char *json =
      "{\"i64\":-9223372036854775808,\"s64\":9223372036854775807,"
      "\"sf64\":-9223372036854775808,\"u64\":\"18446744073709551615\","
      "\"f64\":9223372036854775807}";
  Pbjson__Test__Scalars *s = (Pbjson__Test__Scalars *)dec(SCALARS, json);
  ck_assert(s->i64 == INT64_MIN);
  ck_assert(s->s64 == INT64_MAX);
  ck_assert(s->sf64 == INT64_MIN);
  ck_assert(s->u64 == UINT64_MAX);
  ck_assert(s->f64 == (uint64_t)INT64_MAX);
  char *out = enc(&s->base);
  /* uint64 above INT64_MAX is the only value written as a string. */
  ck_assert_ptr_nonnull(strstr(out, "\"u64\":\"18446744073709551615\""));
  ck_assert_ptr_nonnull(strstr(out, "\"f64\":9223372036854775807"));
  ck_assert_ptr_nonnull(strstr(out, "\"i64\":-9223372036854775808"));
  Pbjson__Test__Scalars *back = (Pbjson__Test__Scalars *)dec(SCALARS, out);
  ck_assert(back->u64 == UINT64_MAX && back->i64 == INT64_MIN &&
            back->s64 == INT64_MAX);
  pbjson_free(&back->base);
  free(out);
  pbjson_free(&s->base);

  Pbjson__Test__Scalars u = PBJSON__TEST__SCALARS__INIT;
  u.f64 = (uint64_t)INT64_MAX + 1;
  char *t = enc(&u.base);
  ck_assert_ptr_nonnull(strstr(t, "\"f64\":\"9223372036854775808\""));
  free(t);
  s = (Pbjson__Test__Scalars *)dec(SCALARS, "{\"u64\":\"0\",\"f64\":\"42\"}");
  ck_assert(s->u64 == 0 && s->f64 == 42);
  pbjson_free(&s->base);
}
END_TEST

START_TEST(uint64_strings_are_strict_and_range_checked) {
  expect_one(SCALARS, "{\"u64\":\"18446744073709551616\"}", ERR_INVAL, "u64",
             "out of range for uint64");
  expect_one(SCALARS, "{\"u64\":-1}", ERR_INVAL, "u64",
             "out of range for uint64");
  expect_one(SCALARS, "{\"f64\":\"-1\"}", ERR_INVAL, "f64",
             "out of range for fixed64");
  expect_one(SCALARS, "{\"u64\":\"12a\"}", ERR_INVAL, "u64",
             "string of decimal digits");
  expect_one(SCALARS, "{\"u64\":\"\"}", ERR_INVAL, "u64",
             "string of decimal digits");
  expect_one(SCALARS, "{\"u64\":\" 1\"}", ERR_INVAL, "u64",
             "string of decimal digits");
  /* Only uint64/fixed64 accept strings. */
  expect_one(SCALARS, "{\"i64\":\"5\"}", ERR_INVAL, "i64",
             "must be an integer");
  /* A literal beyond long long is a jansson parse error. */
  expect_one(SCALARS, "{\"u64\":18446744073709551615}", ERR_INVAL, "",
             "too big integer");
}
END_TEST

START_TEST(int32_and_uint32_overflow_is_rejected) {
  expect_one(SCALARS, "{\"i32\":2147483648}", ERR_INVAL, "i32",
             "out of range for int32");
  expect_one(SCALARS, "{\"i32\":-2147483649}", ERR_INVAL, "i32",
             "out of range for int32");
  expect_one(SCALARS, "{\"s32\":4294967296}", ERR_INVAL, "s32",
             "out of range for sint32");
  expect_one(SCALARS, "{\"sf32\":-9223372036854775808}", ERR_INVAL, "sf32",
             "out of range for sfixed32");
  expect_one(SCALARS, "{\"u32\":4294967296}", ERR_INVAL, "u32",
             "out of range for uint32");
  expect_one(SCALARS, "{\"f32\":-1}", ERR_INVAL, "f32",
             "out of range for fixed32");
  Pbjson__Test__Scalars *s = (Pbjson__Test__Scalars *)dec(
      SCALARS, "{\"i32\":-2147483648,\"s32\":2147483647,"
               "\"u32\":4294967295,\"f32\":0}");
  ck_assert_int_eq(s->i32, INT32_MIN);
  ck_assert_int_eq(s->s32, INT32_MAX);
  ck_assert_uint_eq(s->u32, UINT32_MAX);
  expect_json(&s->base, &(pbjson_opts){.omit_unset = true},
              "{\"i32\":-2147483648,\"s32\":2147483647,\"sf32\":0,\"i64\":0,"
              "\"s64\":0,\"sf64\":0,\"u32\":4294967295,\"f32\":0,\"u64\":0,"
              "\"f64\":0,\"fl\":0.0,\"db\":0.0,\"b\":false,"
              "\"color\":\"COLOR_UNSPECIFIED\",\"str\":\"\",\"by\":\"\"}");
  pbjson_free(&s->base);
}
END_TEST

START_TEST(fraction_given_for_integer_is_rejected) {
  expect_one(SCALARS, "{\"i32\":1.5}", ERR_INVAL, "i32", "must be an integer");
  expect_one(SCALARS, "{\"i64\":1.0}", ERR_INVAL, "i64", "must be an integer");
  expect_one(SCALARS, "{\"u32\":1e3}", ERR_INVAL, "u32", "must be an integer");
  expect_one(SCALARS, "{\"u64\":2.5}", ERR_INVAL, "u64", "must be an integer");
  expect_one(EVERYTHING, "{\"r_i32\":[1,2.5]}", ERR_INVAL, "r_i32[1]",
             "must be an integer");
}
END_TEST

START_TEST(wrong_json_types_are_rejected_by_name) {
  expect_one(SCALARS, "{\"i32\":\"5\"}", ERR_INVAL, "i32",
             "must be an integer");
  expect_one(SCALARS, "{\"db\":\"1.5\"}", ERR_INVAL, "db", "must be a number");
  expect_one(SCALARS, "{\"fl\":true}", ERR_INVAL, "fl", "must be a number");
  expect_one(SCALARS, "{\"b\":\"true\"}", ERR_INVAL, "b",
             "must be true or false");
  expect_one(SCALARS, "{\"b\":1}", ERR_INVAL, "b", "must be true or false");
  expect_one(SCALARS, "{\"str\":5}", ERR_INVAL, "str", "must be a string");
  expect_one(SCALARS, "{\"str\":{}}", ERR_INVAL, "str", "must be a string");
  expect_one(SCALARS, "{\"by\":5}", ERR_INVAL, "by", "must be a base64 string");
  expect_one(EVERYTHING, "{\"owner\":\"x\"}", ERR_INVAL, "owner",
             "must be an object");
  expect_one(EVERYTHING, "{\"items\":{}}", ERR_INVAL, "items",
             "must be an array");
  expect_one(EVERYTHING, "{\"r_str\":\"x\"}", ERR_INVAL, "r_str",
             "must be an array");
  expect_one(EVERYTHING, "{\"counts\":[]}", ERR_INVAL, "counts",
             "must be an object");
  expect_one(EVERYTHING, "{\"items\":[{\"quantity\":1},{\"quantity\":\"2\"}]}",
             ERR_INVAL, "items[1].quantity", "must be an integer");
  expect_one(EVERYTHING, "{\"owner\":{\"email\":[]}}", ERR_INVAL, "owner.email",
             "must be a string");
  expect_one(EVERYTHING, "{\"items\":[{\"tags\":[\"a\",7]}]}", ERR_INVAL,
             "items[0].tags[1]", "must be a string");
}
END_TEST

START_TEST(floats_check_range_and_accept_non_finite_names) {
  expect_one(SCALARS, "{\"fl\":1e39}", ERR_INVAL, "fl",
             "out of range for float");
  expect_one(SCALARS, "{\"fl\":-3.5e38}", ERR_INVAL, "fl",
             "out of range for float");
  expect_one(SCALARS, "{\"db\":\"nan\"}", ERR_INVAL, "db", "must be a number");
  Pbjson__Test__Scalars *s = (Pbjson__Test__Scalars *)dec(
      SCALARS, "{\"fl\":3.4028235e38,\"db\":1e308}");
  ck_assert(s->fl == FLT_MAX);
  ck_assert(s->db == 1e308);
  pbjson_free(&s->base);
  s = (Pbjson__Test__Scalars *)dec(SCALARS,
                                   "{\"fl\":\"NaN\",\"db\":\"-Infinity\"}");
  ck_assert(isnan(s->fl));
  ck_assert(isinf(s->db) && s->db < 0);
  char *out = enc(&s->base);
  ck_assert_ptr_nonnull(strstr(out, "\"fl\":\"NaN\""));
  ck_assert_ptr_nonnull(strstr(out, "\"db\":\"-Infinity\""));
  free(out);
  pbjson_free(&s->base);
  s = (Pbjson__Test__Scalars *)dec(SCALARS, "{\"fl\":\"Infinity\",\"db\":7}");
  ck_assert(isinf(s->fl) && s->fl > 0);
  ck_assert(s->db == 7.0);
  pbjson_free(&s->base);
}
END_TEST

START_TEST(reals_print_exact_by_default_and_short_on_request) {
  Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
  s.fl = 0.1f;
  s.db = 0.1;
  char *a = enc(&s.base);
  /* 17 digits: exact, with binary noise; the float shows as the double
   * nearest to 0.1, not as 0.10000000149011612. */
  ck_assert_ptr_nonnull(strstr(a, "\"fl\":0.10000000000000001"));
  ck_assert_ptr_nonnull(strstr(a, "\"db\":0.10000000000000001"));
  Pbjson__Test__Scalars *back = (Pbjson__Test__Scalars *)dec(SCALARS, a);
  ck_assert(back->fl == 0.1f && back->db == 0.1);
  pbjson_free(&back->base);
  free(a);
  pbjson_opts o = {.real_precision = 15};
  char *b = enc_opts(&s.base, &o);
  ck_assert_ptr_nonnull(strstr(b, "\"fl\":0.1,"));
  ck_assert_ptr_nonnull(strstr(b, "\"db\":0.1,"));
  free(b);
  s.fl = FLT_MAX;
  char *c = enc(&s.base);
  back = (Pbjson__Test__Scalars *)dec(SCALARS, c);
  ck_assert(back->fl == FLT_MAX);
  pbjson_free(&back->base);
  free(c);
}
END_TEST

START_TEST(enums_are_names_and_unknown_names_list_the_choices) {
  Pbjson__Test__Everything *ev = (Pbjson__Test__Everything *)dec(
      EVERYTHING, "{\"scalars\":{\"color\":\"COLOR_RED\"},"
                  "\"r_color\":[\"COLOR_DARK_BLUE\",\"COLOR_UNSPECIFIED\"],"
                  "\"status\":\"ORDER_STATUS_IN_KITCHEN\"}");
  ck_assert_int_eq(ev->scalars->color, PBJSON__TEST__COLOR__COLOR_RED);
  ck_assert_uint_eq(ev->n_r_color, 2);
  ck_assert_int_eq(ev->r_color[0], PBJSON__TEST__COLOR__COLOR_DARK_BLUE);
  ck_assert_int_eq(ev->r_color[1], PBJSON__TEST__COLOR__COLOR_UNSPECIFIED);
  ck_assert_int_eq(ev->status,
                   PBJSON__TEST__ORDER_STATUS__ORDER_STATUS_IN_KITCHEN);
  char *out = enc(&ev->base);
  ck_assert_ptr_nonnull(
      strstr(out, "\"r_color\":[\"COLOR_DARK_BLUE\",\"COLOR_UNSPECIFIED\"]"));
  ck_assert_ptr_nonnull(strstr(out, "\"status\":\"ORDER_STATUS_IN_KITCHEN\""));
  free(out);
  pbjson_free(&ev->base);

  expect_one(SCALARS, "{\"color\":\"COLOR_PURPLE\"}", ERR_INVAL, "color",
             "must be one of: COLOR_UNSPECIFIED, COLOR_RED, COLOR_DARK_BLUE");
  /* Numbers are not accepted, names are case-sensitive. */
  expect_one(SCALARS, "{\"color\":1}", ERR_INVAL, "color", "must be one of");
  expect_one(SCALARS, "{\"color\":\"color_red\"}", ERR_INVAL, "color",
             "must be one of");
  expect_one(EVERYTHING, "{\"r_color\":[\"COLOR_RED\",\"RED\"]}", ERR_INVAL,
             "r_color[1]", "must be one of");

  /* A number the schema does not know is written as the number. */
  Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
  s.color = (Pbjson__Test__Color)7;
  char *t = enc(&s.base);
  ck_assert_ptr_nonnull(strstr(t, "\"color\":7,"));
  free(t);
}
END_TEST

START_TEST(short_lower_enum_style_strips_the_type_prefix) {
  pbjson_opts o = {.enum_style = PBJSON_ENUM_SHORT_LOWER};
  Pbjson__Test__Everything *ev = (Pbjson__Test__Everything *)dec_opts(
      EVERYTHING,
      "{\"status\":\"in_kitchen\",\"scalars\":{\"color\":\"dark_blue\"}}", &o);
  ck_assert_int_eq(ev->status,
                   PBJSON__TEST__ORDER_STATUS__ORDER_STATUS_IN_KITCHEN);
  ck_assert_int_eq(ev->scalars->color, PBJSON__TEST__COLOR__COLOR_DARK_BLUE);
  char *out = enc_opts(&ev->base, &o);
  ck_assert_ptr_nonnull(strstr(out, "\"status\":\"in_kitchen\""));
  ck_assert_ptr_nonnull(strstr(out, "\"color\":\"dark_blue\""));
  free(out);
  pbjson_free(&ev->base);
  pbjson_error e = dec_fail_opts(
      EVERYTHING, "{\"status\":\"ORDER_STATUS_PENDING\"}",
      strlen("{\"status\":\"ORDER_STATUS_PENDING\"}"), &o, ERR_INVAL);
  ck_assert_str_eq(e.errors[0].path, "status");
  ck_assert_str_eq(e.errors[0].description,
                   "must be one of: unspecified, pending, in_kitchen");
}
END_TEST

START_TEST(strings_are_utf8_checked_and_copied) {
  Pbjson__Test__Scalars *s = (Pbjson__Test__Scalars *)dec(
      SCALARS, "{\"str\":\"\\ud83d\\ude00 \\\"q\\\" \\n\"}");
  ck_assert_str_eq(s->str, "\xf0\x9f\x98\x80 \"q\" \n");
  expect_json(&s->base, &(pbjson_opts){0},
              "{\"i32\":0,\"s32\":0,\"sf32\":0,\"i64\":0,\"s64\":0,"
              "\"sf64\":0,\"u32\":0,\"f32\":0,\"u64\":0,\"f64\":0,"
              "\"fl\":0.0,\"db\":0.0,\"b\":false,"
              "\"color\":\"COLOR_UNSPECIFIED\","
              "\"str\":\"\xf0\x9f\x98\x80 \\\"q\\\" \\n\",\"by\":\"\"}");
  pbjson_free(&s->base);
  /* Encoding refuses a string JSON cannot carry, naming it. */
  Pbjson__Test__Everything ev = PBJSON__TEST__EVERYTHING__INIT;
  char *bad[] = {"ok", "\xc0\xaf"}; /* overlong '/' */
  ev.r_str = bad;
  ev.n_r_str = 2;
  json_t *j = (json_t *)1;
  pbjson_error e;
  ck_assert_int_eq(pbjson_encode(&ev.base, NULL, &j, &e), ERR_INVAL);
  ck_assert_ptr_null(j);
  ck_assert_uint_eq(e.count, 1);
  ck_assert_str_eq(e.errors[0].path, "r_str[1]");
  ck_assert_str_eq(e.errors[0].description, "is not valid UTF-8");
}
END_TEST

START_TEST(bytes_are_canonical_padded_base64) {
  Pbjson__Test__Everything *ev = (Pbjson__Test__Everything *)dec(
      EVERYTHING, "{\"r_by\":[\"aGVsbG8=\",\"\",\"/wD7\",\"YQ==\"]}");
  ck_assert_uint_eq(ev->n_r_by, 4);
  ck_assert_uint_eq(ev->r_by[0].len, 5);
  ck_assert_mem_eq(ev->r_by[0].data, "hello", 5);
  ck_assert_uint_eq(ev->r_by[1].len, 0);
  ck_assert_uint_eq(ev->r_by[2].len, 3);
  ck_assert_mem_eq(ev->r_by[2].data, "\xff\x00\xfb", 3);
  ck_assert_uint_eq(ev->r_by[3].len, 1);
  char *out = enc(&ev->base);
  ck_assert_ptr_nonnull(
      strstr(out, "\"r_by\":[\"aGVsbG8=\",\"\",\"/wD7\",\"YQ==\"]"));
  free(out);
  pbjson_free(&ev->base);
  const char *bad[] = {
      "{\"by\":\"aGVsbG8\"}",   /* padding missing */
      "{\"by\":\"aGVsbG8==\"}", /* too much padding */
      "{\"by\":\"aGVs bG8=\"}", /* whitespace */
      "{\"by\":\"_wD7\"}",      /* URL-safe alphabet */
      "{\"by\":\"YR==\"}",      /* non-zero trailing bits */
      "{\"by\":\"@@@@\"}",      "{\"by\":\"=\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_one(SCALARS, bad[i], ERR_INVAL, "by", "must be base64");
}
END_TEST

START_TEST(nested_messages_and_repeated_messages_decode) {
  Pbjson__Test__Everything *ev = (Pbjson__Test__Everything *)dec(
      EVERYTHING,
      "{\"owner\":{\"email\":\"a@b.c\",\"name\":\"Ann\"},"
      "\"items\":[{\"product_id\":\"p1\",\"quantity\":2,\"tags\":[\"x\"]},"
      "{\"product_id\":\"p2\",\"quantity\":99}],"
      "\"node\":{\"name\":\"n1\",\"child\":{\"name\":\"n2\"}}}");
  ck_assert_str_eq(ev->owner->email, "a@b.c");
  ck_assert_str_eq(ev->owner->name, "Ann");
  ck_assert_uint_eq(ev->n_items, 2);
  ck_assert_str_eq(ev->items[0]->product_id, "p1");
  ck_assert_int_eq(ev->items[0]->quantity, 2);
  ck_assert_uint_eq(ev->items[0]->n_tags, 1);
  ck_assert_str_eq(ev->items[0]->tags[0], "x");
  ck_assert_str_eq(ev->items[1]->product_id, "p2");
  ck_assert_int_eq(ev->items[1]->quantity, 99);
  ck_assert_uint_eq(ev->items[1]->n_tags, 0);
  ck_assert_str_eq(ev->node->child->name, "n2");
  ck_assert_ptr_null(ev->node->child->child);
  ck_assert_ptr_null(ev->scalars);
  char *out = enc(&ev->base);
  ck_assert_ptr_nonnull(strstr(
      out, "\"items\":[{\"product_id\":\"p1\",\"quantity\":2,\"tags\":[\"x\"]},"
           "{\"product_id\":\"p2\",\"quantity\":99,\"tags\":[]}]"));
  ck_assert_ptr_nonnull(strstr(
      out,
      "\"node\":{\"name\":\"n1\",\"child\":{\"name\":\"n2\",\"child\":null}}"));
  free(out);
  pbjson_free(&ev->base);
}
END_TEST

START_TEST(unknown_fields_are_rejected_with_their_path) {
  expect_one(EVERYTHING, "{\"bogus\":1}", ERR_INVAL, "bogus", "unknown field");
  expect_one(EVERYTHING, "{\"owner\":{\"emali\":\"x\"}}", ERR_INVAL,
             "owner.emali", "unknown field");
  expect_one(EVERYTHING, "{\"items\":[{},{},{\"bogus\":null}]}", ERR_INVAL,
             "items[2].bogus", "unknown field");
  /* lowerCamel spellings are not aliases */
  expect_one(EVERYTHING, "{\"rI32\":[]}", ERR_INVAL, "rI32", "unknown field");
  pbjson_opts o = {.allow_unknown_fields = true};
  Pbjson__Test__Everything *ev = (Pbjson__Test__Everything *)dec_opts(
      EVERYTHING,
      "{\"bogus\":{\"deep\":[1]},\"items\":[{\"x\":1,\"quantity\":3}]}", &o);
  ck_assert_int_eq(ev->items[0]->quantity, 3);
  pbjson_free(&ev->base);
}
END_TEST

START_TEST(all_errors_are_reported_in_document_order_up_to_the_cap) {
  pbjson_error e = dec_fail(
      EVERYTHING,
      "{\"bogus\":1,\"owner\":{\"email\":5},\"items\":[{\"quantity\":1.5}],"
      "\"r_b\":[true,\"no\"]}",
      ERR_INVAL);
  ck_assert_uint_eq(e.count, 4);
  ck_assert(!e.truncated);
  ck_assert_str_eq(e.errors[0].path, "bogus");
  ck_assert_str_eq(e.errors[1].path, "owner.email");
  ck_assert_str_eq(e.errors[2].path, "items[0].quantity");
  ck_assert_str_eq(e.errors[3].path, "r_b[1]");

  char json[2048];
  size_t n = 0;
  n += (size_t)snprintf(json + n, sizeof json - n, "{");
  for (int i = 0; i < 20; i++)
    n += (size_t)snprintf(json + n, sizeof json - n, "%s\"u%d\":1",
                          i ? "," : "", i);
  snprintf(json + n, sizeof json - n, "}");
  e = dec_fail(EVERYTHING, json, ERR_INVAL);
  ck_assert_uint_eq(e.count, PBJSON_MAX_ERRORS);
  ck_assert(e.truncated);
  ck_assert_str_eq(e.errors[15].path, "u15");

  /* The first error decides the code: a bound before a type error. */
  pbjson_opts o = {.max_repeated = 1};
  const char *j2 = "{\"r_i32\":[1,2],\"bogus\":1}";
  e = dec_fail_opts(EVERYTHING, j2, strlen(j2), &o, ERR_TOOBIG);
  ck_assert_uint_eq(e.count, 2);
  ck_assert_int_eq(e.errors[0].code, ERR_TOOBIG);
  ck_assert_int_eq(e.errors[1].code, ERR_INVAL);
}
END_TEST

START_TEST(null_means_not_set) {
  Pbjson__Test__Everything *ev = (Pbjson__Test__Everything *)dec(
      EVERYTHING,
      "{\"scalars\":null,\"owner\":null,\"items\":null,\"r_i32\":null,"
      "\"r_by\":null,\"choice_str\":null,\"counts\":null,\"node\":null,"
      "\"status\":null}");
  ck_assert_ptr_null(ev->scalars);
  ck_assert_ptr_null(ev->owner);
  ck_assert_uint_eq(ev->n_items, 0);
  ck_assert_uint_eq(ev->n_r_i32, 0);
  ck_assert_uint_eq(ev->n_counts, 0);
  ck_assert_int_eq(ev->choice_case, PBJSON__TEST__EVERYTHING__CHOICE__NOT_SET);
  ck_assert_int_eq(ev->status, 0);
  pbjson_free(&ev->base);
  Pbjson__Test__Scalars *s = (Pbjson__Test__Scalars *)dec(
      SCALARS, "{\"i32\":null,\"str\":null,\"by\":null,\"b\":null}");
  ck_assert_int_eq(s->i32, 0);
  ck_assert_str_eq(s->str, "");
  ck_assert_uint_eq(s->by.len, 0);
  pbjson_free(&s->base);
  /* null is not an element value, nor a document */
  expect_one(EVERYTHING, "{\"r_i32\":[1,null]}", ERR_INVAL, "r_i32[1]",
             "must not be null");
  expect_one(EVERYTHING, "{\"items\":[null]}", ERR_INVAL, "items[0]",
             "must not be null");
  expect_one(EVERYTHING, "null", ERR_INVAL, "", "must be an object");
}
END_TEST

START_TEST(oneof_takes_one_member_and_writes_only_that_one) {
  Pbjson__Test__Everything *ev = (Pbjson__Test__Everything *)dec(
      EVERYTHING, "{\"choice_contact\":{\"email\":\"e\"}}");
  ck_assert_int_eq(ev->choice_case,
                   PBJSON__TEST__EVERYTHING__CHOICE_CHOICE_CONTACT);
  ck_assert_str_eq(ev->choice_contact->email, "e");
  char *out = enc(&ev->base);
  ck_assert_ptr_nonnull(
      strstr(out, "\"choice_contact\":{\"email\":\"e\",\"name\":\"\"}"));
  ck_assert_ptr_null(strstr(out, "choice_str"));
  ck_assert_ptr_null(strstr(out, "choice_num"));
  free(out);
  pbjson_free(&ev->base);

  ev = (Pbjson__Test__Everything *)dec(
      EVERYTHING, "{\"choice_str\":null,\"choice_num\":-5}");
  ck_assert_int_eq(ev->choice_case,
                   PBJSON__TEST__EVERYTHING__CHOICE_CHOICE_NUM);
  ck_assert(ev->choice_num == -5);
  pbjson_free(&ev->base);

  expect_one(EVERYTHING, "{\"choice_str\":\"a\",\"choice_num\":1}", ERR_INVAL,
             "choice_num", "cannot be set together with \"choice_str\"");
  /* A half-built member must still be freed (LeakSanitizer checks). */
  pbjson_error e = dec_fail(
      EVERYTHING,
      "{\"choice_contact\":{\"email\":\"e\",\"bogus\":1},\"choice_str\":\"x\"}",
      ERR_INVAL);
  ck_assert_uint_eq(e.count, 2);
  ck_assert_str_eq(e.errors[0].path, "choice_contact.bogus");
  ck_assert_str_eq(e.errors[1].path, "choice_str");
  /* A member that failed to convert does not take the oneof. */
  e = dec_fail(EVERYTHING, "{\"choice_num\":\"x\",\"choice_str\":\"y\"}",
               ERR_INVAL);
  ck_assert_uint_eq(e.count, 1);
  ck_assert_str_eq(e.errors[0].path, "choice_num");
}
END_TEST

START_TEST(one_member_oneof_is_an_optional_field_written_as_null) {
  /* Nothing set: every one-member oneof is null, in tag order; the
   * two-member oneof "pick" is left out. */
  Pbjson__Test__Optionals o = PBJSON__TEST__OPTIONALS__INIT;
  expect_json(&o.base, NULL,
              "{\"id\":\"\",\"stock\":null,\"note\":null,\"flag\":null,"
              "\"owner\":null,\"color\":null}");
  /* omit_unset leaves them out like any unset field with presence. */
  expect_json(&o.base, &(pbjson_opts){.omit_unset = true}, "{\"id\":\"\"}");

  /* Set, zero values included: a set optional is written even when it
   * holds its type's zero value (that is what presence is for). */
  o.stock_present_case = PBJSON__TEST__OPTIONALS__STOCK_PRESENT_STOCK;
  o.stock = 0;
  o.flag_present_case = PBJSON__TEST__OPTIONALS__FLAG_PRESENT_FLAG;
  o.flag = 0;
  o.note_present_case = PBJSON__TEST__OPTIONALS__NOTE_PRESENT_NOTE;
  o.note = (char *)"";
  o.pick_case = PBJSON__TEST__OPTIONALS__PICK_PICK_B;
  o.pick_b = 3;
  expect_json(&o.base, NULL,
              "{\"id\":\"\",\"stock\":0,\"note\":\"\",\"flag\":false,"
              "\"owner\":null,\"pick_b\":3,\"color\":null}");
  expect_json(&o.base, &(pbjson_opts){.omit_unset = true},
              "{\"id\":\"\",\"stock\":0,\"note\":\"\",\"flag\":false,"
              "\"pick_b\":3}");
  /* A selected message member with a NULL pointer is null too. */
  o.owner_present_case = PBJSON__TEST__OPTIONALS__OWNER_PRESENT_OWNER;
  o.color_present_case = PBJSON__TEST__OPTIONALS__COLOR_PRESENT_COLOR;
  o.color = PBJSON__TEST__COLOR__COLOR_RED;
  o.pick_case = PBJSON__TEST__OPTIONALS__PICK_PICK_A;
  o.pick_a = (char *)"a";
  expect_json(&o.base, NULL,
              "{\"id\":\"\",\"stock\":0,\"pick_a\":\"a\",\"note\":\"\","
              "\"flag\":false,\"owner\":null,\"color\":\"COLOR_RED\"}");

  /* Decoding is unchanged: null or absent = not set; a value sets it,
   * and what is written reads back as the same message. */
  Pbjson__Test__Optionals *d = (Pbjson__Test__Optionals *)dec(
      OPTIONALS, "{\"stock\":null,\"note\":null,\"owner\":null}");
  ck_assert_int_eq(d->stock_present_case,
                   PBJSON__TEST__OPTIONALS__STOCK_PRESENT__NOT_SET);
  ck_assert_int_eq(d->note_present_case,
                   PBJSON__TEST__OPTIONALS__NOTE_PRESENT__NOT_SET);
  ck_assert_int_eq(d->owner_present_case,
                   PBJSON__TEST__OPTIONALS__OWNER_PRESENT__NOT_SET);
  pbjson_free(&d->base);
  expect_reencode(
      OPTIONALS, "{\"stock\":7,\"owner\":{\"email\":\"e\"},\"pick_b\":1}", NULL,
      "{\"id\":\"\",\"stock\":7,\"note\":null,\"flag\":null,"
      "\"owner\":{\"email\":\"e\",\"name\":\"\"},\"pick_b\":1,"
      "\"color\":null}");
  expect_reencode(OPTIONALS,
                  "{\"id\":\"x\",\"stock\":null,\"note\":null,\"flag\":null,"
                  "\"owner\":null,\"color\":null}",
                  NULL,
                  "{\"id\":\"x\",\"stock\":null,\"note\":null,\"flag\":null,"
                  "\"owner\":null,\"color\":null}");
  d = (Pbjson__Test__Optionals *)dec(OPTIONALS, "{\"stock\":-1}");
  ck_assert_int_eq(d->stock_present_case,
                   PBJSON__TEST__OPTIONALS__STOCK_PRESENT_STOCK);
  ck_assert(d->stock == -1);
  pbjson_free(&d->base);
}
END_TEST

START_TEST(maps_are_json_objects_with_typed_keys) {
  Pbjson__Test__Everything *ev = (Pbjson__Test__Everything *)dec(
      EVERYTHING,
      "{\"counts\":{\"a\":1,\"b\":-2},"
      "\"names\":{\"-9223372036854775808\":\"min\",\"7\":\"seven\"},"
      "\"by_flag\":{\"true\":{\"email\":\"t\"},\"false\":null},"
      "\"colors\":{\"4294967295\":\"COLOR_RED\"}}");
  ck_assert_uint_eq(ev->n_counts, 2);
  ck_assert_str_eq(ev->counts[0]->key, "a");
  ck_assert_int_eq(ev->counts[0]->value, 1);
  ck_assert_str_eq(ev->counts[1]->key, "b");
  ck_assert_int_eq(ev->counts[1]->value, -2);
  ck_assert(ev->names[0]->key == INT64_MIN);
  ck_assert(ev->names[1]->key == 7);
  ck_assert_str_eq(ev->names[0]->value, "min");
  ck_assert_int_eq(ev->by_flag[0]->key, 1);
  ck_assert_str_eq(ev->by_flag[0]->value->email, "t");
  ck_assert_int_eq(ev->by_flag[1]->key, 0);
  ck_assert_ptr_null(ev->by_flag[1]->value);
  ck_assert_uint_eq(ev->colors[0]->key, UINT32_MAX);
  ck_assert_int_eq(ev->colors[0]->value, PBJSON__TEST__COLOR__COLOR_RED);
  char *out = enc(&ev->base);
  ck_assert_ptr_nonnull(strstr(
      out, "\"counts\":{\"a\":1,\"b\":-2},"
           "\"names\":{\"-9223372036854775808\":\"min\",\"7\":\"seven\"},"
           "\"by_flag\":{\"true\":{\"email\":\"t\",\"name\":\"\"},"
           "\"false\":null},\"colors\":{\"4294967295\":\"COLOR_RED\"}"));
  free(out);
  pbjson_free(&ev->base);

  expect_one(EVERYTHING, "{\"names\":{\"x\":\"y\"}}", ERR_INVAL, "names[\"x\"]",
             "map key must be a decimal integer");
  /* one spelling per key: "07" and "7" must not both become key 7 */
  expect_one(EVERYTHING, "{\"names\":{\"7\":\"a\",\"07\":\"b\"}}", ERR_INVAL,
             "names[\"07\"]", "without leading zeros");
  expect_one(EVERYTHING, "{\"names\":{\"-0\":\"a\"}}", ERR_INVAL,
             "names[\"-0\"]", "without leading zeros");
  expect_one(EVERYTHING, "{\"names\":{\"\":\"a\"}}", ERR_INVAL, "names[\"\"]",
             "map key must be a decimal integer");
  expect_reencode(EVERYTHING, "{\"names\":{\"0\":\"z\"}}",
                  &(pbjson_opts){.omit_unset = true},
                  "{\"items\":[],\"r_i32\":[],\"r_i64\":[],\"r_u64\":[],"
                  "\"r_fl\":[],\"r_db\":[],\"r_b\":[],\"r_color\":[],"
                  "\"r_str\":[],\"r_by\":[],\"counts\":{},"
                  "\"names\":{\"0\":\"z\"},\"by_flag\":{},\"colors\":{},"
                  "\"status\":\"ORDER_STATUS_UNSPECIFIED\"}");
  expect_one(EVERYTHING, "{\"names\":{\"9223372036854775808\":\"y\"}}",
             ERR_INVAL, "names[\"9223372036854775808\"]",
             "map key out of range for int64");
  expect_one(EVERYTHING, "{\"colors\":{\"-1\":\"COLOR_RED\"}}", ERR_INVAL,
             "colors[\"-1\"]", "map key out of range for uint32");
  expect_one(EVERYTHING, "{\"by_flag\":{\"yes\":{}}}", ERR_INVAL,
             "by_flag[\"yes\"]", "map key must be \"true\" or \"false\"");
  expect_one(EVERYTHING, "{\"counts\":{\"a\":\"x\"}}", ERR_INVAL,
             "counts[\"a\"]", "must be an integer");
  expect_one(EVERYTHING, "{\"by_flag\":{\"true\":{\"bogus\":1}}}", ERR_INVAL,
             "by_flag[\"true\"].bogus", "unknown field");
  /* The repeated key in protobuf keeps the last value in JSON. */
  Pbjson__Test__Everything m = PBJSON__TEST__EVERYTHING__INIT;
  Pbjson__Test__Everything__CountsEntry e1 =
      PBJSON__TEST__EVERYTHING__COUNTS_ENTRY__INIT;
  Pbjson__Test__Everything__CountsEntry e2 =
      PBJSON__TEST__EVERYTHING__COUNTS_ENTRY__INIT;
  e1.key = "k";
  e1.value = 1;
  e2.key = "k";
  e2.value = 2;
  Pbjson__Test__Everything__CountsEntry *entries[] = {&e1, &e2};
  m.counts = entries;
  m.n_counts = 2;
  char *t = enc(&m.base);
  ck_assert_ptr_nonnull(strstr(t, "\"counts\":{\"k\":2}"));
  free(t);
}
END_TEST

START_TEST(entry_shaped_message_outside_a_map_stays_an_array) {
  expect_reencode(&pbjson__test__not_amap__descriptor,
                  "{\"pair\":[{\"key\":\"a\",\"value\":1}]}", NULL,
                  "{\"pair\":[{\"key\":\"a\",\"value\":1}]}");
  expect_one(&pbjson__test__not_amap__descriptor, "{\"pair\":{\"a\":1}}",
             ERR_INVAL, "pair", "must be an array");
}
END_TEST

/* ---- bounds ------------------------------------------------------------ */

/* {"name":"n","child":{... depth levels ...}} as a Node document. */
static char *node_chain(int depth) {
  size_t cap = (size_t)depth * 32 + 16;
  char *s = malloc(cap);
  ck_assert_ptr_nonnull(s);
  size_t n = 0;
  for (int i = 0; i < depth; i++)
    n += (size_t)snprintf(s + n, cap - n, "%s{\"name\":\"n%d\"",
                          i ? ",\"child\":" : "", i);
  for (int i = 0; i < depth; i++) s[n++] = '}';
  s[n] = '\0';
  return s;
}

START_TEST(message_nesting_is_bounded_by_max_depth) {
  char *ok = node_chain(PBJSON_DEFAULT_MAX_DEPTH);
  ProtobufCMessage *m = dec(NODE, ok);
  pbjson_free(m);
  free(ok);
  char *deep = node_chain(PBJSON_DEFAULT_MAX_DEPTH + 1);
  pbjson_error e = dec_fail(NODE, deep, ERR_TOOBIG);
  ck_assert_uint_eq(e.count, 1);
  ck_assert_str_eq(e.errors[0].description, "messages nested deeper than 32");
  /* 31 ".child" = 186 bytes: the path is cut, marked, still valid text */
  ck_assert_uint_lt(strlen(e.errors[0].path), PBJSON_PATH_MAX);
  ck_assert_ptr_nonnull(strstr(e.errors[0].path, "child.child"));
  ck_assert_str_eq(e.errors[0].path + strlen(e.errors[0].path) - 3, "...");

  pbjson_opts o = {.max_depth = 3};
  const char *j = "{\"node\":{\"child\":{\"child\":{}}}}";
  e = dec_fail_opts(EVERYTHING, j, strlen(j), &o, ERR_TOOBIG);
  ck_assert_str_eq(e.errors[0].path, "node.child.child");

  /* Bracket nesting is refused on the text, before jansson recurses;
   * brackets inside strings do not count. */
  char text[512];
  size_t n = (size_t)snprintf(text, sizeof text, "{\"r_i32\":");
  for (int i = 0; i < 100; i++) text[n++] = '[';
  for (int i = 0; i < 100; i++) text[n++] = ']';
  snprintf(text + n, sizeof text - n, "}");
  expect_one(EVERYTHING, text, ERR_TOOBIG, "",
             "JSON nested deeper than 65 levels");
  n = (size_t)snprintf(text, sizeof text, "{\"str\":\"\\\"");
  for (int i = 0; i < 100; i++) text[n++] = '[';
  snprintf(text + n, sizeof text - n, "\"}");
  m = dec(SCALARS, text);
  ck_assert_uint_eq(strlen(((Pbjson__Test__Scalars *)m)->str), 101);
  pbjson_free(m);

  /* Encoding has the same bound. */
  pbjson_opts big = {.max_depth = 40};
  m = dec_opts(NODE, deep, &big);
  json_t *out = (json_t *)1;
  ck_assert_int_eq(pbjson_encode(m, NULL, &out, &e), ERR_TOOBIG);
  ck_assert_ptr_null(out);
  char *s = enc_opts(m, &big);
  free(s);
  pbjson_free(m);
  free(deep);
}
END_TEST

START_TEST(repeated_fields_and_maps_are_capped) {
  pbjson_opts o = {.max_repeated = 3};
  ProtobufCMessage *m = dec_opts(EVERYTHING, "{\"r_i32\":[1,2,3]}", &o);
  pbjson_free(m);
  const char *j = "{\"r_i32\":[1,2,3,4]}";
  pbjson_error e = dec_fail_opts(EVERYTHING, j, strlen(j), &o, ERR_TOOBIG);
  ck_assert_str_eq(e.errors[0].path, "r_i32");
  ck_assert_str_eq(e.errors[0].description, "more than 3 elements");
  j = "{\"counts\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4}}";
  e = dec_fail_opts(EVERYTHING, j, strlen(j), &o, ERR_TOOBIG);
  ck_assert_str_eq(e.errors[0].path, "counts");
  ck_assert_str_eq(e.errors[0].description, "more than 3 entries");

  /* Default cap: 1000 pass, 1001 do not. */
  size_t cap = 16 + 5 * (PBJSON_DEFAULT_MAX_REPEATED + 1);
  char *big = malloc(cap);
  ck_assert_ptr_nonnull(big);
  for (int extra = 0; extra <= 1; extra++) {
    size_t n = (size_t)snprintf(big, cap, "{\"r_b\":[");
    for (int i = 0; i < PBJSON_DEFAULT_MAX_REPEATED + extra; i++)
      n += (size_t)snprintf(big + n, cap - n, "%strue", i ? "," : "");
    snprintf(big + n, cap - n, "]}");
    if (!extra) {
      Pbjson__Test__Everything *ev =
          (Pbjson__Test__Everything *)dec(EVERYTHING, big);
      ck_assert_uint_eq(ev->n_r_b, PBJSON_DEFAULT_MAX_REPEATED);
      ck_assert_int_eq(ev->r_b[PBJSON_DEFAULT_MAX_REPEATED - 1], 1);
      pbjson_free(&ev->base);
    } else {
      expect_one(EVERYTHING, big, ERR_TOOBIG, "r_b", "more than 1000 elements");
    }
  }
  free(big);
}
END_TEST

START_TEST(strings_bytes_and_keys_are_capped_by_max_string) {
  pbjson_opts o = {.max_string = 4};
  ProtobufCMessage *m =
      dec_opts(SCALARS, "{\"str\":\"abcd\",\"by\":\"YWI=\"}", &o);
  pbjson_free(m);
  const char *j = "{\"str\":\"abcde\"}";
  pbjson_error e = dec_fail_opts(SCALARS, j, strlen(j), &o, ERR_TOOBIG);
  ck_assert_str_eq(e.errors[0].path, "str");
  ck_assert_str_eq(e.errors[0].description, "longer than 4 bytes");
  j = "{\"by\":\"YWJj\\u0000\"}";
  e = dec_fail_opts(SCALARS, j, strlen(j), &o, ERR_INVAL); /* \u0000: parser */
  j = "{\"by\":\"YWJjZA==\"}";
  e = dec_fail_opts(SCALARS, j, strlen(j), &o, ERR_TOOBIG);
  ck_assert_str_eq(e.errors[0].path, "by");
  j = "{\"counts\":{\"abcde\":1}}";
  e = dec_fail_opts(EVERYTHING, j, strlen(j), &o, ERR_TOOBIG);
  ck_assert_str_eq(e.errors[0].path, "counts[\"abcde\"]");
  /* multi-byte characters count as bytes */
  j = "{\"str\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}";
  e = dec_fail_opts(SCALARS, j, strlen(j), &o, ERR_TOOBIG);
}
END_TEST

START_TEST(json_text_is_capped_by_max_json_bytes) {
  pbjson_opts o = {.max_json_bytes = 10};
  ProtobufCMessage *m = dec_opts(SCALARS, "{\"i32\":1}", &o);
  pbjson_free(m);
  const char *j = "{\"i32\":123}";
  pbjson_error e = dec_fail_opts(SCALARS, j, strlen(j), &o, ERR_TOOBIG);
  ck_assert_str_eq(e.errors[0].path, "");
  ck_assert_str_eq(e.errors[0].description, "JSON text longer than 10 bytes");
}
END_TEST

/* ---- malformed documents ---------------------------------------------- */

START_TEST(duplicate_keys_are_rejected) {
  expect_one(EVERYTHING, "{\"r_i32\":[1],\"r_i32\":[2]}", ERR_INVAL, "",
             "duplicate object key");
  expect_one(EVERYTHING, "{\"owner\":{\"email\":\"a\",\"email\":\"b\"}}",
             ERR_INVAL, "", "duplicate object key");
}
END_TEST

START_TEST(non_utf8_and_nul_input_is_rejected) {
  expect_one(SCALARS, "{\"str\":\"\xff\"}", ERR_INVAL, "", "invalid JSON");
  expect_one(SCALARS, "{\"str\":\"\xc0\xaf\"}", ERR_INVAL, "", "invalid JSON");
  expect_one(SCALARS, "{\"str\":\"\xed\xa0\x80\"}", ERR_INVAL, "",
             "invalid JSON"); /* surrogate */
  expect_one(SCALARS, "{\"str\":\"a\\u0000b\"}", ERR_INVAL, "", "invalid JSON");
  const char nul[] = "{\"i32\":1}\0";
  pbjson_error e = dec_fail_opts(SCALARS, nul, sizeof nul - 1, NULL, ERR_INVAL);
  ck_assert_str_eq(e.errors[0].path, "");
  /* Error text is clean even when the input is not. */
  e = dec_fail(SCALARS, "{\"str\":\"\xff\xfe\x01\"}", ERR_INVAL);
  json_t *js = json_string(e.errors[0].description);
  ck_assert_ptr_nonnull(js);
  json_decref(js);
}
END_TEST

START_TEST(top_level_must_be_an_object) {
  expect_one(EVERYTHING, "[1]", ERR_INVAL, "", "must be an object");
  expect_one(EVERYTHING, "[]", ERR_INVAL, "", "must be an object");
  expect_one(EVERYTHING, "42", ERR_INVAL, "", "must be an object");
  expect_one(EVERYTHING, "\"x\"", ERR_INVAL, "", "must be an object");
  expect_one(EVERYTHING, "", ERR_INVAL, "", "invalid JSON at line");
  expect_one(EVERYTHING, "{", ERR_INVAL, "", "invalid JSON at line 1");
  expect_one(EVERYTHING, "{} {}", ERR_INVAL, "", "invalid JSON");
  expect_one(EVERYTHING, "{\"a\":1,}", ERR_INVAL, "", "invalid JSON");
  pbjson_error e = dec_fail_opts(EVERYTHING, NULL, 0, NULL, ERR_INVAL);
  ck_assert_uint_eq(e.count, 1);
}
END_TEST

START_TEST(error_text_is_sanitised_and_bounded) {
  /* control character in an unknown key */
  expect_one(EVERYTHING, "{\"a\\u0001b\":1}", ERR_INVAL, "a?b",
             "unknown field");
  /* a key with an embedded NUL names no field */
  json_t *o = json_object();
  json_object_setn_new(o, "i32\0x", 5, json_integer(1));
  ProtobufCMessage *m = (ProtobufCMessage *)1;
  pbjson_error e;
  ck_assert_int_eq(pbjson_decode_value(SCALARS, o, NULL, &m, &e), ERR_INVAL);
  ck_assert_str_eq(e.errors[0].path, "i32?x");
  json_decref(o);
  /* a long multi-byte key: cut at a character boundary, marked "..." */
  char key[600];
  size_t n = 0;
  for (int i = 0; i < 200; i++) {
    memcpy(key + n, "\xc3\xa9", 2);
    n += 2;
  }
  key[n] = '\0';
  char json[700];
  snprintf(json, sizeof json, "{\"owner\":{\"%s\":1}}", key);
  e = dec_fail(EVERYTHING, json, ERR_INVAL);
  const char *p = e.errors[0].path;
  ck_assert_uint_lt(strlen(p), PBJSON_PATH_MAX);
  ck_assert_str_eq(p + strlen(p) - 3, "...");
  ck_assert(strncmp(p, "owner.\xc3\xa9", 8) == 0);
  json_t *js = json_string(p); /* NULL if not valid UTF-8 */
  ck_assert_ptr_nonnull(js);
  json_decref(js);
}
END_TEST

/* ---- ownership and the wire -------------------------------------------- */

static const char *FULL =
    "{\"scalars\":{\"i32\":-1,\"s32\":-2,\"sf32\":-3,\"i64\":-"
    "9223372036854775808,"
    "\"s64\":9223372036854775807,\"sf64\":-6,\"u32\":4294967295,\"f32\":8,"
    "\"u64\":\"18446744073709551615\",\"f64\":10,\"fl\":0.5,\"db\":1e-300,"
    "\"b\":true,\"color\":\"COLOR_RED\",\"str\":\"s\",\"by\":\"AAEC\"},"
    "\"owner\":{\"email\":\"o@x\",\"name\":\"O\"},"
    "\"items\":[{\"product_id\":\"p\",\"quantity\":3,\"tags\":[\"t1\",\"t2\"]}]"
    ","
    "\"r_i32\":[1,-1],\"r_i64\":[-9223372036854775808],"
    "\"r_u64\":[0,\"18446744073709551615\"],\"r_fl\":[1.25],\"r_db\":[2.5],"
    "\"r_b\":[false,true],\"r_color\":[\"COLOR_RED\"],\"r_str\":[\"\",\"x\"],"
    "\"r_by\":[\"/w==\"],\"choice_contact\":{\"email\":\"c\"},"
    "\"counts\":{\"k\":1},\"names\":{\"-1\":\"m\"},"
    "\"by_flag\":{\"false\":{\"name\":\"f\"}},\"colors\":{\"3\":\"COLOR_DARK_"
    "BLUE\"},"
    "\"node\":{\"name\":\"a\",\"child\":{\"name\":\"b\"}},"
    "\"status\":\"ORDER_STATUS_PENDING\"}";

START_TEST(decoded_message_packs_and_unpacks_to_the_same_values) {
  ProtobufCMessage *m = dec(EVERYTHING, FULL);
  ck_assert(protobuf_c_message_check(m));
  size_t sz = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(sz);
  ck_assert_ptr_nonnull(buf);
  ck_assert_uint_eq(protobuf_c_message_pack(m, buf), sz);
  ProtobufCMessage *u = protobuf_c_message_unpack(EVERYTHING, NULL, sz, buf);
  ck_assert_ptr_nonnull(u);
  Pbjson__Test__Everything *ev = (Pbjson__Test__Everything *)u;
  ck_assert(ev->scalars->u64 == UINT64_MAX);
  ck_assert(ev->scalars->i64 == INT64_MIN);
  ck_assert_mem_eq(ev->scalars->by.data, "\x00\x01\x02", 3);
  ck_assert_str_eq(ev->items[0]->tags[1], "t2");
  ck_assert_str_eq(ev->choice_contact->email, "c");
  ck_assert(ev->names[0]->key == -1);
  ck_assert_str_eq(ev->node->child->name, "b");
  ck_assert_int_eq(ev->status,
                   PBJSON__TEST__ORDER_STATUS__ORDER_STATUS_PENDING);
  char *a = enc(m);
  char *b = enc(u);
  ck_assert_str_eq(a, b);
  /* and the JSON decodes to the same wire bytes again */
  ProtobufCMessage *again = dec(EVERYTHING, a);
  size_t sz2 = protobuf_c_message_get_packed_size(again);
  ck_assert_uint_eq(sz2, sz);
  uint8_t *buf2 = malloc(sz2);
  ck_assert_ptr_nonnull(buf2);
  protobuf_c_message_pack(again, buf2);
  ck_assert_mem_eq(buf, buf2, sz);
  free(buf2);
  pbjson_free(again);
  free(a);
  free(b);
  protobuf_c_message_free_unpacked(u, NULL);
  free(buf);
  /* the documented alternative to pbjson_free */
  protobuf_c_message_free_unpacked(m, NULL);
  pbjson_free(NULL);
}
END_TEST

START_TEST(decode_value_reads_the_callers_json_without_taking_it) {
  json_t *body = json_pack("{s:[{s:s, s:i}], s:{s:s}}", "items", "product_id",
                           "p1", "quantity", 4, "owner", "email", "e");
  ck_assert_ptr_nonnull(body);
  ProtobufCMessage *m = NULL;
  pbjson_error e;
  ck_assert_int_eq(pbjson_decode_value(EVERYTHING, body, NULL, &m, &e), ERR_OK);
  Pbjson__Test__Everything *ev = (Pbjson__Test__Everything *)m;
  ck_assert_int_eq(ev->items[0]->quantity, 4);
  ck_assert_str_eq(ev->owner->email, "e");
  ck_assert_int_eq(body->refcount, 1);
  pbjson_free(m);
  /* strings with NUL or invalid UTF-8 that jansson was told not to check */
  json_object_set_new(body, "r_str", json_pack("[s%]", "a\0b", (size_t)3));
  ck_assert_int_eq(pbjson_decode_value(EVERYTHING, body, NULL, &m, &e),
                   ERR_INVAL);
  ck_assert_str_eq(e.errors[0].path, "r_str[0]");
  ck_assert_str_eq(e.errors[0].description, "must not contain NUL characters");
  json_object_set_new(body, "r_str",
                      json_pack("[o]", json_string_nocheck("\xff")));
  ck_assert_int_eq(pbjson_decode_value(EVERYTHING, body, NULL, &m, &e),
                   ERR_INVAL);
  ck_assert_str_eq(e.errors[0].description, "must be valid UTF-8");
  ck_assert_ptr_null(m);
  json_decref(body);
  ck_assert_int_eq(pbjson_decode_value(EVERYTHING, NULL, NULL, &m, NULL),
                   ERR_INVAL);
}
END_TEST

START_TEST(encode_returns_a_new_reference_and_text_the_caller_frees) {
  Pbjson__Test__Contact c = PBJSON__TEST__CONTACT__INIT;
  c.email = "a@b";
  json_t *j = NULL;
  ck_assert_int_eq(pbjson_encode(&c.base, NULL, &j, NULL), ERR_OK);
  ck_assert_int_eq(j->refcount, 1);
  ck_assert_str_eq(json_string_value(json_object_get(j, "email")), "a@b");
  json_decref(j);
  char *s = NULL;
  ck_assert_int_eq(pbjson_encode_string(&c.base, NULL, &s, NULL, NULL), ERR_OK);
  ck_assert_str_eq(s, "{\"email\":\"a@b\",\"name\":\"\"}");
  free(s);
  ck_assert_int_eq(pbjson_encode(NULL, NULL, &j, NULL), ERR_INVAL);
  ck_assert_int_eq(pbjson_encode_string(&c.base, NULL, NULL, NULL, NULL),
                   ERR_INVAL);
}
END_TEST

START_TEST(proto2_required_optional_and_defaults) {
  Pbjson__Test2__Legacy *l =
      (Pbjson__Test2__Legacy *)dec(LEGACY, "{\"id\":\"x\",\"count\":1}");
  ck_assert_int_eq(l->has_limit, 0);
  ck_assert_int_eq(l->limit, 20);
  ck_assert_ptr_null(l->note);
  ck_assert_str_eq(l->greeting, "hi");
  expect_json(&l->base, NULL,
              "{\"id\":\"x\",\"count\":1,\"limit\":null,\"note\":null,"
              "\"blob\":null,\"flag\":null,\"next\":null,\"nums\":[],"
              "\"greeting\":null}");
  expect_json(&l->base, &(pbjson_opts){.omit_unset = true},
              "{\"id\":\"x\",\"count\":1,\"nums\":[]}");
  pbjson_free(&l->base);

  l = (Pbjson__Test2__Legacy *)dec(
      LEGACY, "{\"id\":\"x\",\"count\":0,\"limit\":0,\"note\":\"n\","
              "\"blob\":\"\",\"flag\":false,\"greeting\":\"hi\","
              "\"next\":{\"id\":\"y\",\"count\":2}}");
  ck_assert_int_eq(l->has_limit, 1);
  ck_assert_int_eq(l->limit, 0);
  ck_assert_int_eq(l->has_blob, 1);
  ck_assert_int_eq(l->has_flag, 1);
  expect_json(&l->base, NULL,
              "{\"id\":\"x\",\"count\":0,\"limit\":0,\"note\":\"n\","
              "\"blob\":\"\",\"flag\":false,\"next\":{\"id\":\"y\",\"count\":2,"
              "\"limit\":null,\"note\":null,\"blob\":null,\"flag\":null,"
              "\"next\":null,\"nums\":[],\"greeting\":null},\"nums\":[],"
              "\"greeting\":\"hi\"}");
  size_t sz = protobuf_c_message_get_packed_size(&l->base);
  uint8_t buf[256];
  ck_assert_uint_le(sz, sizeof buf);
  protobuf_c_message_pack(&l->base, buf);
  Pbjson__Test2__Legacy *u = pbjson__test2__legacy__unpack(NULL, sz, buf);
  ck_assert_ptr_nonnull(u);
  ck_assert_int_eq(u->has_limit, 1);
  ck_assert_str_eq(u->next->id, "y");
  pbjson__test2__legacy__free_unpacked(u, NULL);
  pbjson_free(&l->base);

  pbjson_error e = dec_fail(LEGACY, "{\"count\":null}", ERR_INVAL);
  ck_assert_uint_eq(e.count, 2);
  ck_assert_str_eq(e.errors[0].path, "id");
  ck_assert_str_eq(e.errors[0].description, "is required");
  ck_assert_str_eq(e.errors[1].path, "count");
  expect_one(LEGACY, "{\"id\":\"a\",\"count\":1,\"next\":{\"id\":\"b\"}}",
             ERR_INVAL, "next.count", "is required");
}
END_TEST

/* ---- parameters -------------------------------------------------------- */

/* pbjson_param_value must give exactly `want` (JSON text). */
static void param_is(const ProtobufCMessageDescriptor *d, const char *field,
                     const char *text, const char *want) {
  json_t *v = NULL;
  pbjson_error e;
  int rc = pbjson_param_value(d, field, text, strlen(text), &v, &e);
  if (rc != ERR_OK) dump_errors(&e);
  ck_assert_int_eq(rc, ERR_OK);
  char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  ck_assert_str_eq(s, want);
  free(s);
  json_decref(v);
}

static void param_fails(const ProtobufCMessageDescriptor *d, const char *field,
                        const char *text, const char *desc) {
  json_t *v = (json_t *)1;
  pbjson_error e;
  ck_assert_int_eq(pbjson_param_value(d, field, text, strlen(text), &v, &e),
                   ERR_INVAL);
  ck_assert_ptr_null(v);
  ck_assert_uint_eq(e.count, 1);
  ck_assert_str_eq(e.errors[0].path, field);
  ck_assert_msg(strstr(e.errors[0].description, desc) != NULL,
                "\"%s\" lacks \"%s\"", e.errors[0].description, desc);
}

START_TEST(parameters_convert_to_the_fields_json_type) {
  param_is(SCALARS, "i32", "20", "20");
  param_is(SCALARS, "i32", "-7", "-7");
  param_is(SCALARS, "i32", "007", "7");
  param_is(SCALARS, "i64", "-9223372036854775808", "-9223372036854775808");
  param_is(SCALARS, "u64", "18446744073709551615", "\"18446744073709551615\"");
  param_is(SCALARS, "u64", "5", "5");
  param_is(SCALARS, "u64", "-1", "-1"); /* range checked when decoding */
  param_is(SCALARS, "b", "true", "true");
  param_is(SCALARS, "b", "false", "false");
  param_is(SCALARS, "db", "1.5", "1.5");
  param_is(SCALARS, "fl", "-2e3", "-2000.0");
  param_is(SCALARS, "db", "NaN", "\"NaN\"");
  param_is(SCALARS, "str", "h\xc3\xa9", "\"h\xc3\xa9\"");
  param_is(SCALARS, "str", "", "\"\"");
  param_is(SCALARS, "color", "COLOR_RED", "\"COLOR_RED\"");
  param_is(SCALARS, "by", "YQ==", "\"YQ==\"");
  param_is(EVERYTHING, "r_i32", "3", "3");
  param_is(EVERYTHING, "choice_num", "3", "3");

  param_fails(SCALARS, "i32", "2x", "must be an integer");
  param_fails(SCALARS, "i32", "", "must be an integer");
  param_fails(SCALARS, "i32", "+5", "must be an integer");
  param_fails(SCALARS, "i32", " 5", "must be an integer");
  param_fails(SCALARS, "i32", "0x10", "must be an integer");
  param_fails(SCALARS, "i32", "1.0", "must be an integer");
  param_fails(SCALARS, "i32", "-", "must be an integer");
  param_fails(SCALARS, "i64", "9223372036854775808", "out of range for int64");
  param_fails(SCALARS, "u64", "18446744073709551616",
              "out of range for uint64");
  param_fails(SCALARS, "b", "1", "must be true or false");
  param_fails(SCALARS, "b", "True", "must be true or false");
  param_fails(SCALARS, "db", "inf", "must be a number");
  param_fails(SCALARS, "db", " 1", "must be a number");
  param_fails(SCALARS, "db", "1.5x", "must be a number");
  param_fails(SCALARS, "db", "", "must be a number");
  param_fails(SCALARS, "db", "1e999", "out of range for double");
  param_fails(SCALARS, "str", "\xff", "must be valid UTF-8");
  param_fails(EVERYTHING, "owner", "x", "cannot be set from a parameter");
  param_fails(EVERYTHING, "items", "x", "cannot be set from a parameter");
  param_fails(EVERYTHING, "counts", "x", "cannot be set from a parameter");
  param_fails(EVERYTHING, "nope", "x", "unknown field");
  json_t *v = (json_t *)1;
  ck_assert_int_eq(pbjson_param_value(SCALARS, "str", "a\0b", 3, &v, NULL),
                   ERR_INVAL);
  ck_assert_ptr_null(v);
  /* the text need not be NUL-terminated */
  ck_assert_int_eq(pbjson_param_value(SCALARS, "i32", "123456", 2, &v, NULL),
                   ERR_OK);
  ck_assert_int_eq(json_integer_value(v), 12);
  json_decref(v);
}
END_TEST

START_TEST(parameters_merge_into_the_body_and_decode_with_the_same_checks) {
  json_t *body = json_pack("{s:i, s:n}", "i32", 5, "str");
  pbjson_error e;
  /* equal value already present: fine; different: conflict */
  ck_assert_int_eq(pbjson_param_set(body, SCALARS, "i32", "5", 1, &e), ERR_OK);
  ck_assert_int_eq(pbjson_param_set(body, SCALARS, "i32", "6", 1, &e),
                   ERR_INVAL);
  ck_assert_str_eq(e.errors[0].path, "i32");
  ck_assert_str_eq(e.errors[0].description,
                   "conflicts with another value for this field");
  /* null in the body is "not set" */
  ck_assert_int_eq(pbjson_param_set(body, SCALARS, "str", "abc", 3, &e),
                   ERR_OK);
  ck_assert_int_eq(pbjson_param_set(body, SCALARS, "u32", "4294967296", 10, &e),
                   ERR_OK);
  ProtobufCMessage *m = (ProtobufCMessage *)1;
  /* range is checked by decode, with the parameter's name as path */
  ck_assert_int_eq(pbjson_decode_value(SCALARS, body, NULL, &m, &e), ERR_INVAL);
  ck_assert_str_eq(e.errors[0].path, "u32");
  ck_assert_str_eq(e.errors[0].description, "out of range for uint32");
  json_object_del(body, "u32");
  ck_assert_int_eq(pbjson_decode_value(SCALARS, body, NULL, &m, &e), ERR_OK);
  Pbjson__Test__Scalars *s = (Pbjson__Test__Scalars *)m;
  ck_assert_int_eq(s->i32, 5);
  ck_assert_str_eq(s->str, "abc");
  pbjson_free(m);
  json_decref(body);

  /* repeated: appended in order, creating the array */
  body = json_object();
  ck_assert_int_eq(
      pbjson_param_set(body, EVERYTHING, "r_color", "COLOR_RED", 9, &e),
      ERR_OK);
  ck_assert_int_eq(
      pbjson_param_set(body, EVERYTHING, "r_color", "COLOR_DARK_BLUE", 15, &e),
      ERR_OK);
  ck_assert_int_eq(pbjson_param_set(body, EVERYTHING, "r_color", "PINK", 4, &e),
                   ERR_OK);
  ck_assert_int_eq(pbjson_decode_value(EVERYTHING, body, NULL, &m, &e),
                   ERR_INVAL);
  ck_assert_str_eq(e.errors[0].path, "r_color[2]");
  json_array_remove(json_object_get(body, "r_color"), 2);
  ck_assert_int_eq(pbjson_decode_value(EVERYTHING, body, NULL, &m, &e), ERR_OK);
  Pbjson__Test__Everything *ev = (Pbjson__Test__Everything *)m;
  ck_assert_uint_eq(ev->n_r_color, 2);
  ck_assert_int_eq(ev->r_color[1], PBJSON__TEST__COLOR__COLOR_DARK_BLUE);
  pbjson_free(m);
  /* repeated field holding a non-array in the body */
  json_object_set_new(body, "r_i32", json_integer(1));
  ck_assert_int_eq(pbjson_param_set(body, EVERYTHING, "r_i32", "2", 1, &e),
                   ERR_INVAL);
  ck_assert_str_eq(e.errors[0].description,
                   "conflicts with another value for this field");
  /* failures leave the object alone */
  ck_assert_int_eq(pbjson_param_set(body, EVERYTHING, "bogus", "2", 1, &e),
                   ERR_INVAL);
  ck_assert_int_eq(pbjson_param_set(body, EVERYTHING, "r_i32", "x", 1, &e),
                   ERR_INVAL);
  ck_assert_int_eq(json_integer_value(json_object_get(body, "r_i32")), 1);
  ck_assert_ptr_null(json_object_get(body, "bogus"));
  json_decref(body);
  json_t *arr = json_array();
  ck_assert_int_eq(pbjson_param_set(arr, SCALARS, "i32", "1", 1, &e),
                   ERR_INVAL);
  json_decref(arr);
}
END_TEST

static Suite *pbjson_suite(void) {
  Suite *s = suite_create("pbjson");
  TCase *map = tcase_create("mapping");
  tcase_add_test(map, decodes_every_scalar_type);
  tcase_add_test(map, encodes_zero_values_so_every_field_is_present);
  tcase_add_test(map, int64_extremes_round_trip_with_full_precision);
  tcase_add_test(map, uint64_strings_are_strict_and_range_checked);
  tcase_add_test(map, int32_and_uint32_overflow_is_rejected);
  tcase_add_test(map, fraction_given_for_integer_is_rejected);
  tcase_add_test(map, wrong_json_types_are_rejected_by_name);
  tcase_add_test(map, floats_check_range_and_accept_non_finite_names);
  tcase_add_test(map, reals_print_exact_by_default_and_short_on_request);
  tcase_add_test(map, enums_are_names_and_unknown_names_list_the_choices);
  tcase_add_test(map, short_lower_enum_style_strips_the_type_prefix);
  tcase_add_test(map, strings_are_utf8_checked_and_copied);
  tcase_add_test(map, bytes_are_canonical_padded_base64);
  tcase_add_test(map, nested_messages_and_repeated_messages_decode);
  tcase_add_test(map, unknown_fields_are_rejected_with_their_path);
  tcase_add_test(map, all_errors_are_reported_in_document_order_up_to_the_cap);
  tcase_add_test(map, null_means_not_set);
  tcase_add_test(map, oneof_takes_one_member_and_writes_only_that_one);
  tcase_add_test(map, one_member_oneof_is_an_optional_field_written_as_null);
  tcase_add_test(map, maps_are_json_objects_with_typed_keys);
  tcase_add_test(map, entry_shaped_message_outside_a_map_stays_an_array);
  tcase_add_test(map, proto2_required_optional_and_defaults);
  suite_add_tcase(s, map);

  TCase *lim = tcase_create("bounds");
  tcase_add_test(lim, message_nesting_is_bounded_by_max_depth);
  tcase_add_test(lim, repeated_fields_and_maps_are_capped);
  tcase_add_test(lim, strings_bytes_and_keys_are_capped_by_max_string);
  tcase_add_test(lim, json_text_is_capped_by_max_json_bytes);
  tcase_add_test(lim, duplicate_keys_are_rejected);
  tcase_add_test(lim, non_utf8_and_nul_input_is_rejected);
  tcase_add_test(lim, top_level_must_be_an_object);
  tcase_add_test(lim, error_text_is_sanitised_and_bounded);
  suite_add_tcase(s, lim);

  TCase *own = tcase_create("ownership");
  tcase_add_test(own, decoded_message_packs_and_unpacks_to_the_same_values);
  tcase_add_test(own, decode_value_reads_the_callers_json_without_taking_it);
  tcase_add_test(own, encode_returns_a_new_reference_and_text_the_caller_frees);
  suite_add_tcase(s, own);

  TCase *par = tcase_create("parameters");
  tcase_add_test(par, parameters_convert_to_the_fields_json_type);
  tcase_add_test(
      par, parameters_merge_into_the_body_and_decode_with_the_same_checks);
  suite_add_tcase(s, par);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(pbjson_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
