/*
 * validate.c - tenant names and ISO 4217 currencies (see validate.h).
 *
 * The currency list is ISO 4217's active alphabetic codes (from Debian's
 * iso-codes, /usr/share/iso-codes/json/iso_4217.json) without fund codes
 * (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW), precious metals and
 * units (XAG, XAU, XBA-XBD, XDR, XPD, XPT, XSU, XUA) and the test codes
 * (XTS, XXX): prices are never quoted in those. Sorted for bsearch; the
 * unit test checks the order.
 */
#include "services/tenants/validate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const currencies[] = {
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN",
    "BAM", "BBD", "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL",
    "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY",
    "COP", "CRC", "CUC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP",
    "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR",
    "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS",
    "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP",
    "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO",
    "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN",
    "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG",
    "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC",
    "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD",
    "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VED", "VES", "VND", "VUV",
    "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWL",
};
#define NCURRENCIES (sizeof currencies / sizeof currencies[0])

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool validate_currency_known(const char *code) {
  if (code == NULL)
    return false;
  return bsearch(&code, currencies, NCURRENCIES, sizeof currencies[0],
                 cmp_str) != NULL;
}

const char *const *validate_currencies(size_t *n) {
  *n = NCURRENCIES;
  return currencies;
}

int validate_currency(const char *code, char out[4], const char **why) {
  const char *dummy;
  if (why == NULL)
    why = &dummy;
  out[0] = '\0';
  if (code == NULL || strnlen(code, 4) != 3) {
    *why = "must be a three-letter ISO 4217 code";
    return ERR_INVAL;
  }
  char up[4];
  for (int i = 0; i < 3; i++) {
    char c = code[i];
    if (c >= 'a' && c <= 'z')
      c = (char)(c - 'a' + 'A');
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

/* Decodes one UTF-8 sequence at s[0..n); returns its length, or 0 when it
 * is malformed (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned char c = s[0];
  size_t len;
  uint32_t min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2, min = 0x80, *cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, min = 0x800, *cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, *cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    *cp = (*cp << 6) | (s[i] & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
    return 0;
  return len;
}

int validate_name(const char *name, const char **why) {
  const char *dummy;
  if (why == NULL)
    why = &dummy;
  if (name == NULL || name[0] == '\0') {
    *why = "is required";
    return ERR_INVAL;
  }
  /* 100 characters take at most 400 bytes; anything longer is too long
   * without being decoded further. */
  size_t n = strnlen(name, 4 * VALIDATE_NAME_MAX_CHARS + 1);
  const unsigned char *s = (const unsigned char *)name;
  size_t chars = 0, i = 0;
  bool blank = true;
  while (i < n) {
    uint32_t cp = 0;
    size_t len = utf8_next(s + i, n - i, &cp);
    if (len == 0) {
      *why = "must be valid UTF-8";
      return ERR_INVAL;
    }
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0x2028 ||
        cp == 0x2029) {
      *why = "must not contain control characters";
      return ERR_INVAL;
    }
    if (cp != ' ')
      blank = false;
    chars++;
    i += len;
  }
  if (chars > VALIDATE_NAME_MAX_CHARS || name[n] != '\0') {
    *why = "must be at most 100 characters";
    return ERR_INVAL;
  }
  if (blank) {
    *why = "must not be blank";
    return ERR_INVAL;
  }
  return ERR_OK;
}
