/* base_test.c - unit tests for UUIDv7, RFC 3339, string helpers, the
 * UTF-8 text rule, violation lists and the e-mail normalisation. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "libs/base/email.h"
#include "libs/base/slotcache.h"
#include "libs/base/err.h"
#include "libs/base/strbuf.h"
#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/utf8.h"
#include "libs/base/uuid.h"
#include "libs/base/vlist.h"

START_TEST(uuid_v7_has_version_variant_and_time) {
  uuid u;
  int64_t before = time_now_ms();
  uuid_v7(&u);
  int64_t after = time_now_ms();
  ck_assert_int_eq(u.b[6] >> 4, 7);
  ck_assert_int_eq(u.b[8] >> 6, 2);
  ck_assert_int_ge(uuid_v7_time_ms(&u), before);
  ck_assert_int_le(uuid_v7_time_ms(&u), after + 1);
}
END_TEST

START_TEST(uuid_v7_is_strictly_increasing) {
  char prev[UUID_STR_LEN + 1], cur[UUID_STR_LEN + 1];
  uuid_v7_str(prev);
  for (int i = 0; i < 100000; i++) {
    uuid_v7_str(cur);
    ck_assert_msg(strcmp(prev, cur) < 0, "%s !< %s", prev, cur);
    memcpy(prev, cur, sizeof cur);
  }
}
END_TEST

/* id < next both as bytes and as canonical strings. */
static void ck_uuid_lt(const uuid *a, const uuid *b) {
  char sa[UUID_STR_LEN + 1], sb[UUID_STR_LEN + 1];
  uuid_format(a, sa);
  uuid_format(b, sb);
  ck_assert_msg(memcmp(a->b, b->b, UUID_LEN) < 0, "bytes %s !< %s", sa, sb);
  ck_assert_msg(strcmp(sa, sb) < 0, "%s !< %s", sa, sb);
}

/* More ids in one millisecond than the 12-bit counter holds: each one
 * greater than the last; the counter overflows into a borrowed next
 * millisecond, never further than the ids require. */
START_TEST(uuid_v7_counts_up_within_one_millisecond) {
  enum { N = 10000 };
  /* Ahead of the real clock, so this is a fresh millisecond even when an
   * earlier test of this process made ids. */
  int64_t t = time_now_ms() + 60000;
  uuid prev, cur;
  uuid_v7_at(t, &prev);
  ck_assert_int_eq(uuid_v7_time_ms(&prev), t);
  ck_assert_int_lt(((prev.b[6] & 0x0f) << 8) | prev.b[7], 0x800);
  for (int i = 1; i < N; i++) {
    uuid_v7_at(t, &cur);
    ck_assert_int_eq(cur.b[6] >> 4, 7);
    ck_assert_int_eq(cur.b[8] >> 6, 2);
    ck_uuid_lt(&prev, &cur);
    prev = cur;
  }
  /* At least 2048 per millisecond: N ids borrow at most 4 more. */
  ck_assert_int_le(uuid_v7_time_ms(&prev), t + 4);
  ck_assert_int_gt(uuid_v7_time_ms(&prev), t);
  /* The real clock catching up starts a new millisecond, still greater. */
  uuid_v7_at(t + 10, &cur);
  ck_assert_int_eq(uuid_v7_time_ms(&cur), t + 10);
  ck_uuid_lt(&prev, &cur);
}
END_TEST

/* The clock stepping back (NTP, a VM resumed) never makes a smaller id:
 * the last timestamp is kept and the counter goes on. */
START_TEST(uuid_v7_survives_the_clock_going_back) {
  int64_t t = time_now_ms() + 120000;
  uuid a, b, c, d;
  uuid_v7_at(t, &a);
  uuid_v7_at(t - 5000, &b); /* five seconds back */
  ck_uuid_lt(&a, &b);
  ck_assert_int_eq(uuid_v7_time_ms(&b), t);
  uuid_v7_at(t - 1, &c);
  ck_uuid_lt(&b, &c);
  uuid_v7_at(t + 1, &d); /* the clock passes the last id again */
  ck_uuid_lt(&c, &d);
  ck_assert_int_eq(uuid_v7_time_ms(&d), t + 1);
}
END_TEST

enum { UUID_THREADS = 4, UUID_PER_THREAD = 20000 };

static void *make_ids(void *arg) {
  uuid *ids = arg;
  for (int i = 0; i < UUID_PER_THREAD; i++) uuid_v7(&ids[i]);
  return NULL;
}

static int uuid_cmp(const void *a, const void *b) {
  return memcmp(a, b, UUID_LEN);
}

/* Threads share one sequence: each thread's ids increase, and no id is
 * made twice across them. */
START_TEST(uuid_v7_is_monotonic_across_threads) {
  uuid *ids = calloc(UUID_THREADS * UUID_PER_THREAD, sizeof *ids);
  ck_assert_ptr_nonnull(ids);
  pthread_t th[UUID_THREADS];
  for (int t = 0; t < UUID_THREADS; t++)
    ck_assert_int_eq(
        pthread_create(&th[t], NULL, make_ids, ids + t * UUID_PER_THREAD), 0);
  for (int t = 0; t < UUID_THREADS; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < UUID_THREADS; t++)
    for (int i = 1; i < UUID_PER_THREAD; i++)
      ck_uuid_lt(&ids[t * UUID_PER_THREAD + i - 1],
                 &ids[t * UUID_PER_THREAD + i]);
  qsort(ids, UUID_THREADS * UUID_PER_THREAD, sizeof *ids, uuid_cmp);
  for (int i = 1; i < UUID_THREADS * UUID_PER_THREAD; i++)
    ck_uuid_lt(&ids[i - 1], &ids[i]);
  free(ids);
}
END_TEST

START_TEST(uuid_round_trips_and_rejects_garbage) {
  uuid u, v;
  char s[UUID_STR_LEN + 1];
  uuid_v7(&u);
  uuid_format(&u, s);
  ck_assert_int_eq(strlen(s), 36);
  ck_assert_int_eq(uuid_parse(s, strlen(s), &v), ERR_OK);
  ck_assert_mem_eq(u.b, v.b, UUID_LEN);
  /* uuid_v7_str answers the millisecond its id carries. */
  int64_t before = time_now_ms();
  int64_t ms = uuid_v7_str(s);
  ck_assert_int_eq(uuid_parse(s, strlen(s), &v), ERR_OK);
  ck_assert_int_eq(ms, uuid_v7_time_ms(&v));
  ck_assert_int_ge(ms, before);
  ck_assert(uuid_is_valid("0190F0A2-1C4B-7CDE-8F00-123456789ABC"));
  ck_assert(!uuid_is_valid(""));
  ck_assert(!uuid_is_valid("0190f0a2-1c4b-7cde-8f00-123456789ab"));
  ck_assert(!uuid_is_valid("0190f0a2-1c4b-7cde-8f00-123456789abcd"));
  ck_assert(!uuid_is_valid("0190f0a2x1c4b-7cde-8f00-123456789abc"));
  ck_assert(!uuid_is_valid("0190f0a2-1c4b-7cde-8f00-12345678zabc"));
  ck_assert(!uuid_is_valid("{190f0a2-1c4b-7cde-8f00-123456789ab}"));
}
END_TEST

START_TEST(rfc3339_formats_utc_with_millis) {
  char s[RFC3339_MS_LEN + 1];
  ck_assert_int_eq(time_format_rfc3339(0, s), ERR_OK);
  ck_assert_str_eq(s, "1970-01-01T00:00:00.000Z");
  ck_assert_int_eq(time_format_rfc3339(1795341600123LL, s), ERR_OK);
  ck_assert_str_eq(s, "2026-11-22T10:00:00.123Z");
  ck_assert_int_eq(time_format_rfc3339(-1, s), ERR_OK);
  ck_assert_str_eq(s, "1969-12-31T23:59:59.999Z");
  ck_assert_int_eq(time_format_rfc3339(951782400000LL, s), ERR_OK);
  ck_assert_str_eq(s, "2000-02-29T00:00:00.000Z");
  ck_assert_int_eq(time_format_rfc3339(253402300800000LL, s), ERR_INVAL);
}
END_TEST

START_TEST(rfc3339_parses_offsets_and_fractions) {
  int64_t ms;
  const char *a = "2026-11-22T10:00:00.123Z";
  ck_assert_int_eq(time_parse_rfc3339(a, strlen(a), &ms), ERR_OK);
  ck_assert_int_eq(ms, 1795341600123LL);
  const char *b = "2026-11-22T12:00:00.5+02:00";
  ck_assert_int_eq(time_parse_rfc3339(b, strlen(b), &ms), ERR_OK);
  ck_assert_int_eq(ms, 1795341600500LL);
  const char *c = "2026-11-22t10:00:00.123456789z";
  ck_assert_int_eq(time_parse_rfc3339(c, strlen(c), &ms), ERR_OK);
  ck_assert_int_eq(ms, 1795341600123LL);
  const char *bad[] = {"",
                       "2026-11-22",
                       "2026-11-22T10:00:00",
                       "2026-13-01T00:00:00Z",
                       "2026-02-29T00:00:00Z",
                       "2026-11-22T24:00:00Z",
                       "2026-11-22T10:00:00.Z",
                       "2026-11-22T10:00:00Zjunk",
                       "2026-11-22T10:00:00+0200",
                       "2026-11-22 10:00:00Z"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(time_parse_rfc3339(bad[i], strlen(bad[i]), &ms) == ERR_INVAL,
                  "accepted %s", bad[i]);
}
END_TEST

START_TEST(rfc3339_round_trips) {
  char s[RFC3339_MS_LEN + 1];
  int64_t back;
  for (int64_t t = -86400000LL * 800; t < 4102444800000LL; t += 7777777777LL) {
    ck_assert_int_eq(time_format_rfc3339(t, s), ERR_OK);
    ck_assert_int_eq(time_parse_rfc3339(s, strlen(s), &back), ERR_OK);
    ck_assert_int_eq(back, t);
  }
}
END_TEST

START_TEST(monotonic_clock_never_goes_back) {
  int64_t a = time_mono_ns(), b = time_mono_ns();
  ck_assert_int_ge(b, a);
}
END_TEST

static void on_alarm(int sig) { (void)sig; }

/* A signal that interrupts the sleep does not cut it short. */
START_TEST(sleep_lasts_its_time_through_signals) {
  struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART: EINTR */
  ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
  struct itimerval it = {.it_value = {0, 10 * 1000}};
  ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
  int64_t t0 = time_mono_ms();
  time_sleep_ms(60);
  ck_assert_int_ge(time_mono_ms() - t0, 60);
  t0 = time_mono_ms();
  time_sleep_ms(0);
  time_sleep_ms(-5);
  ck_assert_int_lt(time_mono_ms() - t0, 50);
}
END_TEST

START_TEST(strbuf_grows_and_stays_terminated) {
  strbuf b = {0};
  strbuf_reserve(&b, 0);
  ck_assert_ptr_nonnull(b.p);
  ck_assert_str_eq(b.p, "");
  strbuf_puts(&b, "ab");
  strbuf_putn(&b, "cdef", 2);
  strbuf_printf(&b, "-%d-", 42);
  ck_assert_str_eq(b.p, "abcd-42-");
  ck_assert_uint_eq(b.len, 8);
  /* Past the first capacity, by printf too (its second pass). */
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  strbuf_printf(&b, "%s|", big);
  strbuf_puts(&b, big);
  ck_assert_uint_eq(b.len, 8 + 299 + 1 + 299);
  ck_assert_uint_eq(strlen(b.p), b.len);
  ck_assert_int_eq(b.p[8 + 299], '|');
  ck_assert(b.cap > b.len);
  ck_assert(!b.oom);
  strbuf_free(&b);
  ck_assert_ptr_null(b.p);
  ck_assert_uint_eq(b.len, 0);
  strbuf_free(NULL);
}
END_TEST

START_TEST(strbuf_stops_after_oom) {
  strbuf b = {0};
  strbuf_puts(&b, "kept");
  strbuf_reserve(&b, SIZE_MAX - 2); /* cannot be had */
  ck_assert(b.oom);
  strbuf_puts(&b, "dropped");
  strbuf_printf(&b, "%s", "dropped");
  ck_assert_str_eq(b.p, "kept");
  strbuf_free(&b);
}
END_TEST

START_TEST(utf8_sequences_are_measured_or_refused) {
  ck_assert_uint_eq(utf8_seq_len("a", 1), 1);
  ck_assert_uint_eq(utf8_seq_len("\xc3\xa9x", 3), 2);        /* é */
  ck_assert_uint_eq(utf8_seq_len("\xe2\x82\xac", 3), 3);     /* € */
  ck_assert_uint_eq(utf8_seq_len("\xf0\x9f\x98\x80", 4), 4); /* 😀 */
  ck_assert_uint_eq(utf8_seq_len("\xe2\x82\xac", 2), 0);     /* cut */
  ck_assert_uint_eq(utf8_seq_len("\xc0\xaf", 2), 0);         /* overlong */
  ck_assert_uint_eq(utf8_seq_len("\xed\xa0\x80", 3), 0);     /* surrogate */
  ck_assert_uint_eq(utf8_seq_len("\xf4\x90\x80\x80", 4), 0); /* > 10FFFF */
  ck_assert_uint_eq(utf8_seq_len("\x80", 1), 0);
  ck_assert_uint_eq(utf8_seq_len("\xc3x", 2), 0);
  ck_assert(utf8_valid("", 0));
  ck_assert(utf8_valid("caf\xc3\xa9", 5));
  ck_assert(!utf8_valid("caf\xc3", 4));
  ck_assert(!utf8_valid("a\xff"
                        "b",
                        3));
}
END_TEST

START_TEST(hex_digits) {
  ck_assert_int_eq(str_hex_digit('0'), 0);
  ck_assert_int_eq(str_hex_digit('9'), 9);
  ck_assert_int_eq(str_hex_digit('a'), 10);
  ck_assert_int_eq(str_hex_digit('F'), 15);
  ck_assert_int_eq(str_hex_digit('g'), -1);
  ck_assert_int_eq(str_hex_digit('/'), -1);
  ck_assert_int_eq(str_hex_digit(':'), -1);
  ck_assert_int_eq(str_hex_digit('\0'), -1);
}
END_TEST

START_TEST(str_copy_truncates_and_terminates) {
  char buf[4];
  ck_assert_uint_eq(str_copy(buf, "abcdef", sizeof buf), 6);
  ck_assert_str_eq(buf, "abc");
  ck_assert_uint_eq(str_copy(buf, "ab", sizeof buf), 2);
  ck_assert_str_eq(buf, "ab");
  ck_assert(str_has_prefix("dns+tcp://x", "dns+tcp://"));
  ck_assert(!str_has_prefix("tcp://x", "dns+tcp://"));
  ck_assert(str_is_printable("abc ~", 5));
  ck_assert(!str_is_printable("ab\n", 3));
  ck_assert_str_eq(err_str(ERR_TIMEOUT), "timed out");
  ck_assert_str_eq(err_str(9999), "unknown error");
}
END_TEST

static const char *text_why(const char *s, size_t min, size_t max,
                            unsigned flags) {
  const char *why = NULL;
  return utf8_check_text(s, min, max, flags, &why) == ERR_OK ? NULL : why;
}

START_TEST(text_counts_characters_not_bytes) {
  char s[2100];
  /* 500 two-byte characters: 1000 bytes, 500 characters */
  for (int i = 0; i < 500; i++) memcpy(s + 2 * i, "\xc3\xa9", 2);
  s[1000] = '\0';
  ck_assert_ptr_null(text_why(s, 0, 500, 0));
  ck_assert_str_eq(text_why(s, 0, 499, 0), "is too long");
  memcpy(s + 1000, "x", 2);
  ck_assert_str_eq(text_why(s, 0, 500, 0), "is too long");
  /* 500 four-byte characters: 2000 bytes, the most 500 may take */
  for (int i = 0; i < 500; i++) memcpy(s + 4 * i, "\xf0\x9f\x8d\x95", 4);
  s[2000] = '\0';
  ck_assert_ptr_null(text_why(s, 0, 500, 0));
  /* One more: the byte bound cuts it in half, yet it is "too long", not
   * "invalid". */
  memcpy(s + 2000, "\xf0\x9f\x8d\x95", 5);
  ck_assert_str_eq(text_why(s, 0, 500, 0), "is too long");
  /* Bytes beyond the bound are never read: no terminator needed there. */
  char big[9] = {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'};
  ck_assert_str_eq(text_why(big, 0, 2, 0), "is too long");
  ck_assert_str_eq(text_why("ab", 3, 10, 0), "is too short");
  ck_assert_ptr_null(text_why("abc", 3, 3, 0));
  ck_assert_str_eq(text_why("a", 0, 0, 0), "is too long");
}
END_TEST

START_TEST(text_refuses_bad_utf8_controls_and_blank) {
  ck_assert_str_eq(text_why("", 1, 10, 0), "is required");
  ck_assert_str_eq(text_why(NULL, 1, 10, 0), "is required");
  ck_assert_ptr_null(text_why("", 0, 10, 0));
  ck_assert_ptr_null(text_why(NULL, 0, 10, 0));
  ck_assert_str_eq(text_why("   ", 1, 10, 0), "must not be blank");
  ck_assert_str_eq(text_why("\n\n", 1, 10, UTF8_MULTILINE),
                   "must not be blank");
  ck_assert_ptr_null(text_why("        ", 8, 10, UTF8_BLANK_OK));
  ck_assert_str_eq(text_why("a\nb", 1, 10, 0),
                   "must not contain control characters");
  ck_assert_ptr_null(text_why("a\nb\tc\r\n", 1, 10, UTF8_MULTILINE));
  ck_assert_str_eq(text_why("a\x01", 0, 10, UTF8_MULTILINE),
                   "must not contain control characters");
  ck_assert_str_eq(text_why("a\x7f", 0, 10, 0),
                   "must not contain control characters");
  ck_assert_str_eq(text_why("a\xc2\x85", 0, 10, 0), /* C1 NEL */
                   "must not contain control characters");
  ck_assert_str_eq(text_why("a\xe2\x80\xa8", 0, 10, UTF8_MULTILINE),
                   "must not contain control characters"); /* U+2028 */
  ck_assert_str_eq(text_why("\xc0\xaf", 0, 10, 0), "must be valid UTF-8");
  ck_assert_str_eq(text_why("\xed\xa0\x80", 0, 10, 0),
                   "must be valid UTF-8"); /* surrogate */
  ck_assert_str_eq(text_why("\xf4\x90\x80\x80", 0, 10, 0),
                   "must be valid UTF-8"); /* above U+10FFFF */
  ck_assert_str_eq(text_why("ab\xc3", 0, 10, 0), "must be valid UTF-8");
  ck_assert_str_eq(text_why("\xff", 0, 10, 0), "must be valid UTF-8");
  ck_assert_int_eq(utf8_check_text("fine", 1, 10, 0, NULL), ERR_OK);
  ck_assert_int_eq(utf8_check_text("\x01", 1, 10, 0, NULL), ERR_INVAL);
}
END_TEST

START_TEST(uuid_canonical_lower_cases_and_refuses_garbage) {
  char out[UUID_STR_LEN + 1];
  ck_assert_int_eq(uuid_canonical("01890A5D-AC96-774B-BCCE-B302099A8057", out),
                   ERR_OK);
  ck_assert_str_eq(out, "01890a5d-ac96-774b-bcce-b302099a8057");
  ck_assert_int_eq(uuid_canonical("01890a5d-ac96-774b-bcce-b302099a8057", out),
                   ERR_OK);
  ck_assert_str_eq(out, "01890a5d-ac96-774b-bcce-b302099a8057");
  const char *bad[] = {NULL, "", "nope",
                       "01890a5d-ac96-774b-bcce-b302099a80570",
                       "{01890a5d-ac96-774b-bcce-b302099a8057}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memcpy(out, "x", 2);
    ck_assert_int_eq(uuid_canonical(bad[i], out), ERR_INVAL);
    ck_assert_str_eq(out, "");
  }
}
END_TEST

START_TEST(vlist_keeps_fields_and_counts_past_the_cap) {
  vlist v;
  vlist_init(&v);
  ck_assert_uint_eq(v.n, 0);
  vlist_add(&v, "must be a UUID", "items[%d].product_id", 3);
  vlist_add(&v, "is required", "name");
  ck_assert_uint_eq(v.n, 2);
  ck_assert_uint_eq(vlist_stored(&v), 2);
  ck_assert_str_eq(v.v[0].field, "items[3].product_id");
  ck_assert_str_eq(v.v[0].why, "must be a UUID");
  ck_assert(vlist_has(&v, "name"));
  ck_assert(!vlist_has(&v, "items"));
  /* A long field is cut, never overflows. */
  char longf[200];
  memset(longf, 'f', sizeof longf - 1);
  longf[sizeof longf - 1] = '\0';
  vlist_add(&v, "x", "%s", longf);
  ck_assert_uint_eq(strlen(v.v[2].field), VLIST_FIELD_MAX - 1);
  for (int i = 0; i < 100; i++) vlist_add(&v, "x", "f%d", i);
  ck_assert_uint_eq(v.n, 103);
  ck_assert_uint_eq(vlist_stored(&v), VLIST_MAX);
  ck_assert(vlist_has(&v, "f60"));
  ck_assert(!vlist_has(&v, "f61")); /* the 65th: counted, not kept */
  vlist_init(&v);
  ck_assert_uint_eq(v.n, 0);
  ck_assert(!vlist_has(&v, "name"));
}
END_TEST

/* The rule auth and the gateway share (email.h): every variant of one
 * address an attacker could use to get a fresh login bucket gives the
 * same text. */
START_TEST(slotcache_bounds_copies_and_refuses_a_read_older_than_a_forget) {
  slotcache *c = NULL;
  ck_assert_int_eq(slotcache_new(0, 4, 1000, &c), ERR_INVAL);
  ck_assert_int_eq(slotcache_new(8, 0, 1000, &c), ERR_INVAL);
  ck_assert_int_eq(slotcache_new(8, SLOTCACHE_VALUE_MAX + 1, 1000, &c),
                   ERR_INVAL);
  ck_assert_int_eq(slotcache_new(8, 4, 0, &c), ERR_INVAL);
  ck_assert_ptr_null(c);
  ck_assert_int_eq(slotcache_new(1, 4, 60000, &c), ERR_OK); /* one slot */
  char out[4] = "";
  ck_assert(!slotcache_get(c, "a", out));
  slotcache_put(c, "a", "EUR", slotcache_epoch(c));
  ck_assert(slotcache_get(c, "a", out));
  ck_assert_str_eq(out, "EUR");
  slotcache_put(c, "b", "JPY", slotcache_epoch(c)); /* same slot: evicts */
  ck_assert(!slotcache_get(c, "a", out));
  ck_assert(slotcache_get(c, "b", out));
  char longkey[SLOTCACHE_KEY_MAX + 2];
  memset(longkey, 'k', sizeof longkey - 1);
  longkey[sizeof longkey - 1] = '\0';
  slotcache_put(c, longkey, "USD", slotcache_epoch(c)); /* not kept */
  ck_assert(!slotcache_get(c, longkey, out));
  ck_assert(slotcache_get(c, "b", out));
  uint64_t e = slotcache_epoch(c);
  slotcache_forget(c, "b");
  ck_assert(!slotcache_get(c, "b", out));
  slotcache_put(c, "b", "JPY", e); /* read before the forget */
  ck_assert(!slotcache_get(c, "b", out));
  slotcache_free(c);
  ck_assert_int_eq(slotcache_new(4, 4, 1, &c), ERR_OK);
  slotcache_put(c, "a", "EUR", slotcache_epoch(c));
  time_sleep_ms(20); /* past the 1 ms TTL, whatever the load */
  ck_assert(!slotcache_get(c, "a", out));
  slotcache_free(c);
  slotcache_free(NULL);
  ck_assert(!slotcache_get(NULL, "a", out));
}
END_TEST

START_TEST(email_variants_normalise_to_one_text) {
  const char *same[] = {"owner@x.test",        " owner@x.test",
                        "owner@x.test ",       "\towner@x.test\t",
                        "  OWNER@X.Test  ",    "Owner@x.TEST",
                        "\t \tOwNeR@x.test \t"};
  for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
    char out[EMAIL_MAX + 1];
    ck_assert_int_eq(email_normalize(same[i], out, sizeof out), ERR_OK);
    ck_assert_str_eq(out, "owner@x.test");
  }
}
END_TEST

START_TEST(email_normalisation_is_bounded_and_ascii_only) {
  char out[EMAIL_MAX + 1];
  /* Inner spaces and non-ASCII bytes are kept (auth refuses them later);
   * no Unicode folding: "\xc3\x89" (E acute) is not lower-cased. */
  ck_assert_int_eq(email_normalize(" A b@X.t ", out, sizeof out), ERR_OK);
  ck_assert_str_eq(out, "a b@x.t");
  ck_assert_int_eq(email_normalize("\xc3\x89@X.t", out, sizeof out), ERR_OK);
  ck_assert_str_eq(out, "\xc3\x89@x.t");
  /* Nothing but blanks, NULL, no room. */
  ck_assert_int_eq(email_normalize(" \t ", out, sizeof out), ERR_INVAL);
  ck_assert_str_eq(out, "");
  ck_assert_int_eq(email_normalize("", out, sizeof out), ERR_INVAL);
  ck_assert_int_eq(email_normalize(NULL, out, sizeof out), ERR_INVAL);
  ck_assert_int_eq(email_normalize("a@b.c", out, 0), ERR_INVAL);
  char small[4];
  ck_assert_int_eq(email_normalize("a@b.c", small, sizeof small), ERR_TOOBIG);
  ck_assert_str_eq(small, "");
  /* Exactly EMAIL_MAX bytes (with blanks around) fits; one more does not. */
  char in[EMAIL_INPUT_MAX + 64];
  memset(in, ' ', sizeof in);
  memset(in + 10, 'a', EMAIL_MAX);
  in[10 + EMAIL_MAX + 20] = '\0';
  ck_assert_int_eq(email_normalize(in, out, sizeof out), ERR_OK);
  ck_assert_uint_eq(strlen(out), EMAIL_MAX);
  in[10 + EMAIL_MAX] = 'a';
  ck_assert_int_eq(email_normalize(in, out, sizeof out), ERR_TOOBIG);
  /* Blanks past the input window are not trimmed away inside it: the
   * whole input must end within EMAIL_INPUT_MAX bytes. */
  memset(in, ' ', sizeof in);
  memcpy(in, "a@b.co", 6);
  in[sizeof in - 2] = 'x';
  in[sizeof in - 1] = '\0';
  ck_assert_int_eq(email_normalize(in, out, sizeof out), ERR_TOOBIG);
}
END_TEST

int main(void) {
  Suite *s = suite_create("base");
  TCase *tc = tcase_create("base");
  /* Check's 4 s default is short for 100 000 ids under the sanitizer on a
   * loaded 2-core machine; nothing here is a timing assertion. */
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, uuid_v7_has_version_variant_and_time);
  tcase_add_test(tc, uuid_v7_is_strictly_increasing);
  tcase_add_test(tc, uuid_v7_counts_up_within_one_millisecond);
  tcase_add_test(tc, uuid_v7_survives_the_clock_going_back);
  tcase_add_test(tc, uuid_v7_is_monotonic_across_threads);
  tcase_add_test(tc, uuid_round_trips_and_rejects_garbage);
  tcase_add_test(tc, rfc3339_formats_utc_with_millis);
  tcase_add_test(tc, rfc3339_parses_offsets_and_fractions);
  tcase_add_test(tc, rfc3339_round_trips);
  tcase_add_test(tc, monotonic_clock_never_goes_back);
  tcase_add_test(tc, sleep_lasts_its_time_through_signals);
  tcase_add_test(tc, str_copy_truncates_and_terminates);
  tcase_add_test(tc, strbuf_grows_and_stays_terminated);
  tcase_add_test(tc, strbuf_stops_after_oom);
  tcase_add_test(tc, hex_digits);
  tcase_add_test(tc, utf8_sequences_are_measured_or_refused);
  tcase_add_test(tc, text_counts_characters_not_bytes);
  tcase_add_test(tc, text_refuses_bad_utf8_controls_and_blank);
  tcase_add_test(tc, uuid_canonical_lower_cases_and_refuses_garbage);
  tcase_add_test(tc, vlist_keeps_fields_and_counts_past_the_cap);
  tcase_add_test(tc, email_variants_normalise_to_one_text);
  tcase_add_test(tc, email_normalisation_is_bounded_and_ascii_only);
  tcase_add_test(
      tc, slotcache_bounds_copies_and_refuses_a_read_older_than_a_forget);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
