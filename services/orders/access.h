/*
 * access.h - role ranks: owner > admin > staff > customer.
 *
 * Callers are identified by their access token, verified with libs/authn
 * in handlers.c (the tenant is the token's tid); this module only ranks
 * the role claim. Which method needs which role is in orders.proto's
 * header and README.md.
 */
#ifndef ORDERS_ACCESS_H
#define ORDERS_ACCESS_H

#include <stdbool.h>

#define ACCESS_CUSTOMER 1
#define ACCESS_STAFF 2
#define ACCESS_ADMIN 3
#define ACCESS_OWNER 4

/* owner 4, admin 3, staff 2, customer 1, anything else (or NULL) 0. */
int access_role_rank(const char *role);

/* The name of the lowest role of a rank ("staff"), for messages. */
const char *access_rank_name(int rank);

/* True when role ranks at least min_rank (and is a known role). */
bool access_at_least(const char *role, int min_rank);

#endif
