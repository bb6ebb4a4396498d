/* err.c - names for the shared error codes (see err.h). */
#include "libs/base/err.h"

const char *err_str(int err) {
  switch (err) {
  case ERR_OK:
    return "ok";
  case ERR_NOMEM:
    return "out of memory";
  case ERR_INVAL:
    return "invalid argument";
  case ERR_TOOBIG:
    return "too large";
  case ERR_TIMEOUT:
    return "timed out";
  case ERR_CLOSED:
    return "closed";
  case ERR_UNAVAILABLE:
    return "unavailable";
  case ERR_IO:
    return "i/o error";
  case ERR_NOTFOUND:
    return "not found";
  case ERR_EXISTS:
    return "already exists";
  case ERR_CONFLICT:
    return "conflict";
  case ERR_DB:
    return "database error";
  case ERR_PROTO:
    return "protocol error";
  case ERR_INTERNAL:
    return "internal error";
  default:
    return "unknown error";
  }
}
