/*
 * bus_frame_test.c - the bus message format: round trips, and every kind
 * of bad frame rejected without a crash (missing NUL, empty or overlong
 * topic, garbage protobuf, oversized, topic mismatch, invalid fields),
 * plus truncations and random bytes.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/uuid.h"
#include "libs/bus/bus.h"

typedef struct tev {
  Rpc__V1__Event e;
  char id[UUID_STR_LEN + 1];
} tev;

static void mk(tev *t, const char *topic, uint64_t seq) {
  Rpc__V1__Event init = RPC__V1__EVENT__INIT;
  t->e = init;
  uuid_v7_str(t->id);
  t->e.id = t->id;
  t->e.type = "OrderCreated";
  t->e.tenant_id = "t1";
  t->e.source = "orders";
  t->e.seq = seq;
  t->e.time_unix_ms = 1700000000123;
  t->e.payload.data = (uint8_t *)"\x01\x02\x00\x03";
  t->e.payload.len = 4;
  t->e.topic = (char *)topic;
}

/* A small deterministic xorshift generator (the C library one is banned
 * in this tree). */
static uint32_t rng_state = 12345;
static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

START_TEST(encode_then_decode_round_trips_every_field) {
  tev t;
  mk(&t, "orders.t1", 42);
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_OK);
  ck_assert_uint_gt(len, strlen("orders.t1") + 1);
  ck_assert_mem_eq(buf, "orders.t1\0", 10);
  Rpc__V1__Event *d = NULL;
  ck_assert_int_eq(bus_frame_decode(buf, len, 0, &d), ERR_OK);
  ck_assert_str_eq(d->id, t.id);
  ck_assert_str_eq(d->type, "OrderCreated");
  ck_assert_str_eq(d->tenant_id, "t1");
  ck_assert_str_eq(d->source, "orders");
  ck_assert_uint_eq(d->seq, 42);
  ck_assert_int_eq(d->time_unix_ms, 1700000000123);
  ck_assert_uint_eq(d->payload.len, 4);
  ck_assert_mem_eq(d->payload.data, "\x01\x02\x00\x03", 4);
  ck_assert_str_eq(d->topic, "orders.t1");
  rpc__v1__event__free_unpacked(d, NULL);
  free(buf);
}
END_TEST

START_TEST(encode_accepts_null_optional_strings) {
  tev t;
  mk(&t, "auth.revoked", 1);
  t.e.type = NULL;
  t.e.tenant_id = NULL;
  t.e.payload.data = NULL;
  t.e.payload.len = 0;
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_OK);
  Rpc__V1__Event *d = NULL;
  ck_assert_int_eq(bus_frame_decode(buf, len, 0, &d), ERR_OK);
  ck_assert_str_eq(d->type, "");
  ck_assert_str_eq(d->tenant_id, "");
  rpc__v1__event__free_unpacked(d, NULL);
  free(buf);
}
END_TEST

START_TEST(encode_rejects_invalid_events) {
  uint8_t *buf = (uint8_t *)1;
  size_t len = 7;
  tev t;
  mk(&t, "", 1);
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_INVAL);
  ck_assert_ptr_null(buf);
  ck_assert_uint_eq(len, 0);
  mk(&t, "bad\ttopic", 1);
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_INVAL);
  char longt[BUS_MAX_TOPIC_LEN + 2];
  memset(longt, 'a', sizeof(longt) - 1);
  longt[sizeof(longt) - 1] = '\0';
  mk(&t, longt, 1);
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_INVAL);
  longt[BUS_MAX_TOPIC_LEN] = '\0'; /* exactly the maximum is fine */
  mk(&t, longt, 1);
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_OK);
  free(buf);
  mk(&t, "x", 0);
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_INVAL);
  mk(&t, "x", 1);
  t.e.id = "not-a-uuid";
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_INVAL);
  mk(&t, "x", 1);
  t.e.source = "";
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_INVAL);
  mk(&t, "x", 1);
  char longs[BUS_MAX_TYPE_LEN + 2];
  memset(longs, 'T', sizeof(longs) - 1);
  longs[sizeof(longs) - 1] = '\0';
  t.e.type = longs;
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_INVAL);
  mk(&t, "x", 1);
  char longten[BUS_MAX_TENANT_LEN + 2];
  memset(longten, 'n', sizeof(longten) - 1);
  longten[sizeof(longten) - 1] = '\0';
  t.e.tenant_id = longten;
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_INVAL);
  char longsrc[BUS_MAX_SOURCE_LEN + 2];
  memset(longsrc, 's', sizeof(longsrc) - 1);
  longsrc[sizeof(longsrc) - 1] = '\0';
  mk(&t, "x", 1);
  t.e.source = longsrc;
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_INVAL);
  ck_assert_int_eq(bus_event_validate(NULL), ERR_INVAL);
  mk(&t, "x", 1);
  t.e.payload.data = NULL; /* len 4 without data */
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, &buf, &len), ERR_INVAL);
  ck_assert_int_eq(bus_frame_encode(NULL, 0, &buf, &len), ERR_INVAL);
}
END_TEST

START_TEST(encode_rejects_oversized) {
  tev t;
  mk(&t, "orders.t1", 1);
  static uint8_t big[4096];
  t.e.payload.data = big;
  t.e.payload.len = sizeof(big);
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(bus_frame_encode(&t.e, 1024, &buf, &len), ERR_TOOBIG);
  ck_assert_ptr_null(buf);
  ck_assert_int_eq(bus_frame_encode(&t.e, 8192, &buf, &len), ERR_OK);
  free(buf);
}
END_TEST

static void encode(const char *topic, uint8_t **buf, size_t *len) {
  tev t;
  mk(&t, topic, 7);
  ck_assert_int_eq(bus_frame_encode(&t.e, 0, buf, len), ERR_OK);
}

START_TEST(decode_rejects_frame_without_nul) {
  Rpc__V1__Event *d = (Rpc__V1__Event *)1;
  ck_assert_int_eq(bus_frame_decode("orders.t1", 9, 0, &d), ERR_PROTO);
  ck_assert_ptr_null(d);
  ck_assert_int_eq(bus_frame_decode("", 0, 0, &d), ERR_PROTO);
  ck_assert_int_eq(bus_frame_decode(NULL, 0, 0, &d), ERR_PROTO);
  /* A NUL beyond the longest legal topic does not count. */
  uint8_t buf[BUS_MAX_TOPIC_LEN + 10];
  memset(buf, 'a', sizeof(buf));
  buf[BUS_MAX_TOPIC_LEN + 5] = '\0';
  ck_assert_int_eq(bus_frame_decode(buf, sizeof(buf), 0, &d), ERR_PROTO);
  ck_assert_ptr_null(d);
}
END_TEST

START_TEST(decode_rejects_empty_topic) {
  uint8_t *buf = NULL;
  size_t len = 0;
  encode("orders.t1", &buf, &len);
  /* Move the packed event right after a leading NUL. */
  uint8_t *f = malloc(len);
  f[0] = '\0';
  memcpy(f + 1, buf + 10, len - 10);
  Rpc__V1__Event *d = NULL;
  ck_assert_int_eq(bus_frame_decode(f, len - 9, 0, &d), ERR_PROTO);
  ck_assert_ptr_null(d);
  free(f);
  free(buf);
}
END_TEST

START_TEST(decode_rejects_garbage_protobuf) {
  static const uint8_t g1[] =
      "orders.t1\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
  Rpc__V1__Event *d = NULL;
  ck_assert_int_eq(bus_frame_decode(g1, sizeof(g1) - 1, 0, &d), ERR_PROTO);
  ck_assert_ptr_null(d);
  /* Field 1 (string) claiming 100 bytes with 2 present. */
  static const uint8_t g2[] = "orders.t1\0\x0a\x64xx";
  ck_assert_int_eq(bus_frame_decode(g2, sizeof(g2) - 1, 0, &d), ERR_PROTO);
  /* An empty event decodes as protobuf but fails validation. */
  static const uint8_t g3[] = "orders.t1\0";
  ck_assert_int_eq(bus_frame_decode(g3, sizeof(g3) - 1, 0, &d), ERR_PROTO);
  ck_assert_ptr_null(d);
}
END_TEST

START_TEST(decode_rejects_oversized_frame) {
  uint8_t *buf = NULL;
  size_t len = 0;
  encode("orders.t1", &buf, &len);
  Rpc__V1__Event *d = NULL;
  ck_assert_int_eq(bus_frame_decode(buf, len, len - 1, &d), ERR_TOOBIG);
  ck_assert_ptr_null(d);
  ck_assert_int_eq(bus_frame_decode(buf, len, len, &d), ERR_OK);
  rpc__v1__event__free_unpacked(d, NULL);
  free(buf);
}
END_TEST

START_TEST(decode_rejects_topic_that_differs_from_event) {
  uint8_t *buf = NULL;
  size_t len = 0;
  encode("orders.t1", &buf, &len);
  buf[8] = '2'; /* frame says orders.t2, event says orders.t1 */
  Rpc__V1__Event *d = NULL;
  ck_assert_int_eq(bus_frame_decode(buf, len, 0, &d), ERR_PROTO);
  ck_assert_ptr_null(d);
  free(buf);
}
END_TEST

START_TEST(decode_survives_every_truncation_and_random_bytes) {
  uint8_t *buf = NULL;
  size_t len = 0;
  encode("kitchen.t9", &buf, &len);
  Rpc__V1__Event *d = NULL;
  for (size_t n = 0; n < len; n++) {
    int rc = bus_frame_decode(buf, n, 0, &d);
    if (rc == ERR_OK) {
      /* A cut that still parses must at least be a valid event. */
      ck_assert_int_eq(bus_event_validate(d), ERR_OK);
      rpc__v1__event__free_unpacked(d, NULL);
    }
  }
  rng_state = 12345;
  uint8_t r[256];
  for (int i = 0; i < 3000; i++) {
    size_t n = (size_t)(rng() % sizeof(r));
    for (size_t j = 0; j < n; j++) r[j] = (uint8_t)rng();
    if (n > 3) r[rng() % 3] = '\0';
    if (bus_frame_decode(r, n, 0, &d) == ERR_OK)
      rpc__v1__event__free_unpacked(d, NULL);
    /* Flip one byte of a valid frame. */
    uint8_t *c = malloc(len);
    memcpy(c, buf, len);
    c[(size_t)rng() % len] ^= (uint8_t)(1u << (rng() % 8));
    if (bus_frame_decode(c, len, 0, &d) == ERR_OK)
      rpc__v1__event__free_unpacked(d, NULL);
    free(c);
  }
  free(buf);
}
END_TEST

int main(void) {
  Suite *s = suite_create("bus_frame");
  TCase *tc = tcase_create("frame");
  tcase_add_test(tc, encode_then_decode_round_trips_every_field);
  tcase_add_test(tc, encode_accepts_null_optional_strings);
  tcase_add_test(tc, encode_rejects_invalid_events);
  tcase_add_test(tc, encode_rejects_oversized);
  tcase_add_test(tc, decode_rejects_frame_without_nul);
  tcase_add_test(tc, decode_rejects_empty_topic);
  tcase_add_test(tc, decode_rejects_garbage_protobuf);
  tcase_add_test(tc, decode_rejects_oversized_frame);
  tcase_add_test(tc, decode_rejects_topic_that_differs_from_event);
  tcase_add_test(tc, decode_survives_every_truncation_and_random_bytes);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
