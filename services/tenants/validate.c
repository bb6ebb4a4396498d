/*
 * validate.c - tenant names and ISO 4217 currencies (see validate.h).
 *
 * The currency list is ISO 4217's active alphabetic codes (from Debian's
 * iso-codes, /usr/share/iso-codes/json/iso_4217.json) without fund codes
 * (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW), precious metals and
 * units (XAG, XAU, XBA-XBD, XDR, XPD, XPT, XSU, XUA) and the test codes
 * (XTS, XXX): prices are never quoted in those. Sorted for bsearch; the
 * unit test checks the order. Names follow libs/base's utf8.h text rule.
 */
#include "services/tenants/validate.h"

#include <stdlib.h>
#include <string.h>

#include "libs/base/utf8.h"

static const char *const currencies[] = {
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM",
    "BBD", "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN",
    "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUC",
    "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR",
    "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD",
    "HNL", "HRK", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT",
    "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
    "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN",
    "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK",
    "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX",
    "USD", "UYU", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF",
    "XPF", "YER", "ZAR", "ZMW", "ZWL",
};
#define NCURRENCIES (sizeof currencies / sizeof currencies[0])

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool validate_currency_known(const char *code) {
  if (code == NULL) return false;
  return bsearch(&code, currencies, NCURRENCIES, sizeof currencies[0],
                 cmp_str) != NULL;
}

const char *const *validate_currencies(size_t *n) {
  *n = NCURRENCIES;
  return currencies;
}

int validate_currency(const char *code, char out[4], const char **why) {
  const char *dummy;
  if (why == NULL) why = &dummy;
  out[0] = '\0';
  if (code == NULL || strnlen(code, 4) != 3) {
    *why = "must be a three-letter ISO 4217 code";
    return ERR_INVAL;
  }
  char up[4];
  for (int i = 0; i < 3; i++) {
    char c = code[i];
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    if (c < 'A' || c > 'Z') {
      *why = "must be a three-letter ISO 4217 code";
      return ERR_INVAL;
    }
    up[i] = c;
  }
  up[3] = '\0';
  if (!validate_currency_known(up)) {
    *why = "is not an ISO 4217 currency";
    return ERR_INVAL;
  }
  memcpy(out, up, 4);
  return ERR_OK;
}

int validate_name(const char *name, const char **why) {
  const char *reason = NULL;
  if (utf8_check_text(name, 1, VALIDATE_NAME_MAX_CHARS, 0, &reason) == ERR_OK)
    return ERR_OK;
  if (why != NULL)
    *why = strcmp(reason, "is too long") == 0 ? "must be at most 100 characters"
                                              : reason;
  return ERR_INVAL;
}
