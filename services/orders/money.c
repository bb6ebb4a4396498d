/*
 * money.c - ISO 4217 exponents and decimal formatting (see money.h).
 *
 * The table holds only the exceptions to "2 decimals", from ISO 4217's
 * list of active codes (Debian iso-codes); the unit test checks it is
 * sorted (bsearch).
 */
#include "services/orders/money.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct exp_row {
  const char *code;
  int exponent;
} exp_row;

static const exp_row exceptions[] = {
    {"BHD", 3}, {"BIF", 0}, {"CLP", 0}, {"DJF", 0}, {"GNF", 0}, {"IQD", 3},
    {"ISK", 0}, {"JOD", 3}, {"JPY", 0}, {"KMF", 0}, {"KRW", 0}, {"KWD", 3},
    {"LYD", 3}, {"OMR", 3}, {"PYG", 0}, {"RWF", 0}, {"TND", 3}, {"UGX", 0},
    {"VND", 0}, {"VUV", 0}, {"XAF", 0}, {"XOF", 0}, {"XPF", 0},
};

static int cmp_row(const void *key, const void *row) {
  return strcmp(key, ((const exp_row *)row)->code);
}

int money_exponent(const char *currency) {
  if (currency == NULL) return 2;
  const exp_row *r =
      bsearch(currency, exceptions, sizeof exceptions / sizeof exceptions[0],
              sizeof exceptions[0], cmp_row);
  return r ? r->exponent : 2;
}

int money_format(int64_t amount, const char *currency, char *out, size_t cap) {
  int e = money_exponent(currency);
  /* Work on the magnitude as unsigned so INT64_MIN is fine. */
  uint64_t mag = amount < 0 ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
  uint64_t div = 1;
  for (int i = 0; i < e; i++) div *= 10;
  int n;
  if (e == 0)
    n = snprintf(out, cap, "%s%llu", amount < 0 ? "-" : "",
                 (unsigned long long)mag);
  else
    n = snprintf(out, cap, "%s%llu.%0*llu", amount < 0 ? "-" : "",
                 (unsigned long long)(mag / div), e,
                 (unsigned long long)(mag % div));
  if (n < 0 || (size_t)n >= cap) {
    if (cap > 0) out[0] = '\0';
    return ERR_TOOBIG;
  }
  return ERR_OK;
}
