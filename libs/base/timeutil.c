/*
 * timeutil.c - clocks and RFC 3339 (see timeutil.h).
 *
 * Date arithmetic uses the days-from-civil algorithm (H. Hinnant) instead of
 * timegm()/gmtime_r(), so it is pure, thread-safe and independent of TZ.
 */
#include "libs/base/timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t time_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t time_mono_ms(void) { return time_mono_ns() / 1000000; }

void time_sleep_ms(int64_t ms) {
  if (ms <= 0) return;
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                        .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) /* banned-ok: the one sleep */ != 0 &&
         errno == EINTR) {
  }
}

/* Days since 1970-01-01 for a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int time_format_rfc3339(int64_t unix_ms, char out[RFC3339_MS_LEN + 1]) {
  int64_t secs = floor_div(unix_ms, 1000);
  int ms = (int)(unix_ms - secs * 1000);
  int64_t days = floor_div(secs, 86400);
  int sod = (int)(secs - days * 86400);
  int64_t y;
  int m, d;
  civil_from_days(days, &y, &m, &d);
  if (y < 0 || y > 9999) return ERR_INVAL;
  /* Every field is range-checked above; the wide scratch buffer only keeps
   * -Wformat-truncation from assuming arbitrary ints. */
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, m, d,
           sod / 3600, (sod / 60) % 60, sod % 60, ms);
  memcpy(out, tmp, RFC3339_MS_LEN + 1);
  return ERR_OK;
}

/* Reads exactly n decimal digits at s[*i]. */
static int digits(const char *s, size_t len, size_t *i, int n, int *out) {
  int v = 0;
  for (int k = 0; k < n; k++) {
    if (*i >= len || s[*i] < '0' || s[*i] > '9') return -1;
    v = v * 10 + (s[*i] - '0');
    (*i)++;
  }
  *out = v;
  return 0;
}

static int expect(const char *s, size_t len, size_t *i, char c) {
  if (*i >= len || s[*i] != c) return -1;
  (*i)++;
  return 0;
}

static int days_in_month(int y, int m) {
  static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return dm[m - 1];
}

int time_parse_rfc3339(const char *s, size_t len, int64_t *unix_ms) {
  size_t i = 0;
  int y, mo, d, h, mi, se, ms = 0;
  if (s == NULL || digits(s, len, &i, 4, &y) || expect(s, len, &i, '-') ||
      digits(s, len, &i, 2, &mo) || expect(s, len, &i, '-') ||
      digits(s, len, &i, 2, &d))
    return ERR_INVAL;
  if (i >= len || (s[i] != 'T' && s[i] != 't')) return ERR_INVAL;
  i++;
  if (digits(s, len, &i, 2, &h) || expect(s, len, &i, ':') ||
      digits(s, len, &i, 2, &mi) || expect(s, len, &i, ':') ||
      digits(s, len, &i, 2, &se))
    return ERR_INVAL;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
      mi > 59 || se > 60) /* 60: a leap second, folded into the next */
    return ERR_INVAL;
  if (i < len && s[i] == '.') {
    i++;
    int nd = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      if (nd < 3) ms = ms * 10 + (s[i] - '0');
      nd++;
      i++;
    }
    if (nd == 0) return ERR_INVAL;
    for (; nd < 3; nd++) ms *= 10;
  }
  int offset_min = 0;
  if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i < len && (s[i] == '+' || s[i] == '-')) {
    int sign = s[i] == '-' ? -1 : 1, oh, om;
    i++;
    if (digits(s, len, &i, 2, &oh) || expect(s, len, &i, ':') ||
        digits(s, len, &i, 2, &om) || oh > 23 || om > 59)
      return ERR_INVAL;
    offset_min = sign * (oh * 60 + om);
  } else {
    return ERR_INVAL;
  }
  if (i != len) return ERR_INVAL;
  int64_t days = days_from_civil(y, mo, d);
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - offset_min * 60;
  *unix_ms = secs * 1000 + ms;
  return ERR_OK;
}
