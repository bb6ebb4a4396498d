/*
 * access.c - role ranks (see access.h).
 */
#include "services/orders/access.h"

#include <string.h>

int access_role_rank(const char *role) {
  if (role == NULL)
    return 0;
  if (strcmp(role, "owner") == 0)
    return ACCESS_OWNER;
  if (strcmp(role, "admin") == 0)
    return ACCESS_ADMIN;
  if (strcmp(role, "staff") == 0)
    return ACCESS_STAFF;
  if (strcmp(role, "customer") == 0)
    return ACCESS_CUSTOMER;
  return 0;
}

const char *access_rank_name(int rank) {
  switch (rank) {
  case ACCESS_OWNER:
    return "owner";
  case ACCESS_ADMIN:
    return "admin";
  case ACCESS_STAFF:
    return "staff";
  default:
    return "customer";
  }
}

bool access_at_least(const char *role, int min_rank) {
  int r = access_role_rank(role);
  return r > 0 && r >= min_rank;
}
