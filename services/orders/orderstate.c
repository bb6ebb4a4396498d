/*
 * orderstate.c - the order status machine (see orderstate.h).
 */
#include "services/orders/orderstate.h"

#include <string.h>

static const struct {
  order_status s;
  const char *name;
} names[] = {
    {OS_PENDING, "pending"},     {OS_CONFIRMED, "confirmed"},
    {OS_PREPARING, "preparing"}, {OS_READY, "ready"},
    {OS_DELIVERED, "delivered"}, {OS_CANCELLED, "cancelled"},
};
#define NNAMES (sizeof names / sizeof names[0])

const char *orderstate_name(order_status s) {
  for (size_t i = 0; i < NNAMES; i++)
    if (names[i].s == s) return names[i].name;
  return NULL;
}

order_status orderstate_parse(const char *text) {
  if (text == NULL) return OS_UNSPECIFIED;
  for (size_t i = 0; i < NNAMES; i++)
    if (strcmp(names[i].name, text) == 0) return names[i].s;
  return OS_UNSPECIFIED;
}

bool orderstate_valid(order_status s) { return orderstate_name(s) != NULL; }

bool orderstate_can_cancel(order_status s, bool staff) {
  if (!staff) return s == OS_PENDING;
  return s == OS_PENDING || s == OS_CONFIRMED || s == OS_PREPARING;
}

bool orderstate_can_move(order_status from, order_status to) {
  if (to == OS_CANCELLED) return orderstate_can_cancel(from, true);
  switch (from) {
  case OS_PENDING:
    return to == OS_CONFIRMED;
  case OS_CONFIRMED:
    return to == OS_PREPARING;
  case OS_PREPARING:
    return to == OS_READY;
  case OS_READY:
    return to == OS_DELIVERED;
  default:
    return false;
  }
}
