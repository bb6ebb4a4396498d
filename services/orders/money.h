/*
 * money.h - minor units and their decimal form.
 *
 * Money is an integer number of minor units (docs/ARCHITECTURE.md, "Data"); an
 * order also carries its total as a decimal string in the currency's
 * minor unit ("12.50" EUR, "1250" JPY, "1.250" KWD). The number of
 * decimals is ISO 4217's exponent: 0 for the currencies without minor
 * units in use, 3 for the dinars and rials that have mils, 2 for the
 * rest. Tenants only accept active, non-fund currencies (tenants'
 * validate.c), so exponent 4 (CLF, UYW) never occurs.
 */
#ifndef ORDERS_MONEY_H
#define ORDERS_MONEY_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define MONEY_STR_MAX 32 /* "-92233720368547758.08" and a NUL fit */

/* The ISO 4217 minor-unit exponent of an upper-case code (0, 2 or 3);
 * 2 for codes it does not list. */
int money_exponent(const char *currency);

/* Writes amount (minor units) in currency as a decimal string: exactly
 * exponent digits after a '.', none (and no '.') for exponent 0, a '-'
 * for negative amounts. ERR_TOOBIG when cap is too small. */
int money_format(int64_t amount, const char *currency, char *out,
                 size_t cap) WARN_UNUSED;

#endif
