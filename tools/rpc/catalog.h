/*
 * catalog.h - every RPC method the platform serves, as the generated
 * access tables declare it (proto_access in bazel/defs.bzl), for the
 * operator tool tools/rpc.
 *
 * The tool reads nothing else: no reflection service, no .proto files at
 * run time. The method names, who may call each one and the protobuf-c
 * descriptors of its request and reply all come from the same tables the
 * servers' guards use, so what `rpc list` shows is what the servers
 * enforce, and a new method shows up here by rebuilding the tool.
 */
#ifndef TOOLS_RPC_CATALOG_H
#define TOOLS_RPC_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "libs/svcid/access.h"

#define CATALOG_SERVICE_MAX 32 /* "auth", the audience of a method */

/* The method's declaration ("auth.v1.Auth/Login"), or NULL. */
const svcid_method_access *catalog_find(const char *method);

/* The service that serves a method: its package prefix ("auth" for
 * "auth.v1.Auth/Login", "orders" for "orders.v1.Events/Replay"), which is
 * also the audience of a service token for it. Returns false when the
 * name has no prefix or it is too long for out. */
bool catalog_service_of(const char *method, char out[CATALOG_SERVICE_MAX + 1]);

/* Prints one line per method to f: name, request -> response, callers.
 * filter NULL lists everything; otherwise a service ("auth") or a
 * protobuf service ("auth.v1.Auth"). Returns the number of methods
 * printed (0: nothing matched). */
size_t catalog_list(FILE *f, const char *filter);

/* Prints the method's callers and the fields of its request and reply
 * messages, then of every message and enum they use, each once. */
void catalog_describe(FILE *f, const svcid_method_access *m);

#endif
