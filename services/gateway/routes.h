/*
 * routes.h - the public API's route table (HTTP-API.md): one array of
 * rows, one per endpoint. docs/openapi.json describes the same endpoints
 * and openapi_test fails when the two disagree.
 */
#ifndef GATEWAY_ROUTES_H
#define GATEWAY_ROUTES_H

#include <stddef.h>

#include "services/gateway/route.h"

/* The rows (static) and their number; each row's min_role is its
 * backend method's declared role for the caller "gateway". */
const route *routes_public(size_t *n);

/* The route_role the declaration of rpc ("auth.v1.Auth/Login") gives the
 * gateway, or -1 when the gateway may not call it (undeclared, not a
 * caller, or a caller only for itself). */
int routes_declared_role(const char *rpc);

#endif
