/*
 * err.h - the one error enum every library in the tree returns.
 *
 * Functions that can fail return an `int` that is ERR_OK (0) or one of the
 * codes below; results travel through out-parameters. Keeping one small enum
 * (rather than errno values, nng codes and libpq states side by side) lets a
 * caller handle any library's failure the same way, and err_str() names it.
 * Libraries that wrap another library (nng, libpq, hiredis) map that
 * library's errors onto these codes at the boundary.
 */
#ifndef BASE_ERR_H
#define BASE_ERR_H

#define WARN_UNUSED __attribute__((warn_unused_result))

enum err_code {
  ERR_OK = 0,
  ERR_NOMEM,       /* an allocation failed */
  ERR_INVAL,       /* bad argument or malformed input */
  ERR_TOOBIG,      /* input larger than a configured bound */
  ERR_TIMEOUT,     /* a deadline passed */
  ERR_CLOSED,      /* the object or connection was closed */
  ERR_UNAVAILABLE, /* the peer could not be reached */
  ERR_IO,          /* a system call failed */
  ERR_NOTFOUND,    /* the thing asked for does not exist */
  ERR_EXISTS,      /* the thing to create already exists */
  ERR_CONFLICT,    /* a concurrent change won (serialisation, lock, version) */
  ERR_DB,          /* the database reported an error */
  ERR_PROTO,       /* the peer broke the protocol (undecodable message) */
  ERR_INTERNAL,    /* a bug or an impossible state */
  ERR__COUNT
};

/* A short, static, human-readable name for an error code ("timed out").
 * Never NULL; unknown codes give "unknown error". */
const char *err_str(int err);

#endif
