/*
 * dialset.h - the set of nng dialers behind one address list, kept in
 * step with DNS: shared by the RPC client (libs/rpc/rpc_client.c) and the
 * bus subscriber (libs/bus/bus_sub.c). Internal: visible to libs/rpc and
 * libs/bus only, not part of either public API.
 *
 * Design. An address is the list rpc_address_parse accepts: endpoints
 * "tcp://HOST:PORT" (one URL, dialled as is) and "dns+tcp://NAME:PORT"
 * (resolved with getaddrinfo, every address behind the name dialled: the
 * Kubernetes headless-Service pattern). A dialset owns that list, the
 * last good resolution of each name, and the nng dialers created on the
 * user's socket. "Reconcile" makes the dialers match the wanted URLs
 * (the union of every endpoint's URLs, duplicates dialled once): dialers
 * for new URLs are created and started non-blocking (a peer that is not
 * up yet is redialled by nng in the background, never an error), dialers
 * whose URL vanished are closed. A background thread re-resolves the
 * names every resolve_interval_ms and reconciles; a failed lookup keeps
 * the last good answer, so a DNS blip does not disconnect a healthy
 * peer, and is logged once per streak of failures (plus once when the
 * name resolves again), not every interval.
 *
 * The dialset also counts the socket's connected pipes (nng pipe
 * notifications), which is how both users tell "no peer connected" from
 * "slow peer": a lock-free read for the RPC client's hot path, and a
 * wait with a deadline for readiness checks and tests.
 *
 * Outlier ejection (as Envoy's outlier detection): the RPC client
 * reports each reply's outcome with the pipe it came on
 * (dialset_report); a replica - one dialled URL - whose replies fail
 * `failures` times in a row is ejected: its dialer is closed (and with
 * it the connection), and the URL is left out of the wanted set for
 * base_ms, doubled for each ejection that follows within max_ms of the
 * last one ended, capped at max_ms. When the time is up the next
 * dialset_tick (the client calls it before each attempt) dials it again:
 * it is re-admitted as soon as it connects, and a replica still failing
 * is ejected again for longer. At most half of the URLs are out at once
 * (failures alike everywhere are not outliers), never the last one.
 * A reply carries its pipe; a timed-out request does not (nng's req0
 * does not say which pipe took it), so a timeout is laid at the door of
 * the pipes that were silent since the request was sent while another
 * answered (dialset_report_timeout: each reply's time is kept per pipe,
 * in a small table written without a lock). A replica that dies loses
 * its connection at once, which nng's reconnect already keeps out until
 * it listens again.
 *
 * The socket stays the user's: it sets the socket's own options, and
 * closing it closes every dialer and pipe. Order of teardown:
 * dialset_stop (no more dialling), nng_close(sock), dialset_free (pipe
 * notifications point at the dialset until the socket is closed).
 *
 *   dialset *ds;
 *   if (dialset_new("dns+tcp://orders:7001", &o, &ds) != ERR_OK) ...
 *   if (dialset_attach(ds, sock) != ERR_OK) ...   // first resolve + dial
 *   if (dialset_start_resolver(ds) != ERR_OK) ... // when names may move
 *   ...
 *   dialset_stop(ds); nng_close(sock); dialset_free(ds);
 */
#ifndef RPC_DIALSET_H
#define RPC_DIALSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "libs/base/err.h"
#include "libs/rpc/rpc.h"

#define DIALSET_IP_LEN 46 /* INET6_ADDRSTRLEN */

typedef struct dialset dialset;

/* Looks host up: writes at most cap IP literals (IPv6 without brackets)
 * to ips and their number to *n. Returns ERR_OK, or any other code when
 * the lookup failed, with *why a static description for the log. Called
 * from dialset_attach, dialset_refresh and the resolver thread, never
 * two at once for one dialset. */
typedef int (*dialset_resolve_fn)(void *arg, const char *host,
                                  char (*ips)[DIALSET_IP_LEN], size_t cap,
                                  size_t *n, const char **why);

typedef struct dialset_options {
  const char *who;              /* log message prefix ("rpc client",
                                   "bus"); static; default "dialset" */
  size_t max_endpoints;         /* entries in the address list; default
                                   and max RPC_MAX_ENDPOINTS */
  size_t max_dialers;           /* distinct URLs dialled at once; further
                                   ones are logged and ignored; default 256 */
  size_t recv_max_bytes;        /* NNG_OPT_RECVMAXSZ on each dialer; 0 =
                                   the socket's */
  uint32_t reconnect_min_ms;    /* NNG_OPT_RECONNMINT on each dialer; 0 =
                                   the socket's */
  uint32_t reconnect_max_ms;    /* NNG_OPT_RECONNMAXT; 0 = the socket's */
  uint32_t resolve_interval_ms; /* dns+tcp re-resolution; default 5000 */
  dialset_resolve_fn resolve;   /* NULL: getaddrinfo (tests inject one) */
  void *resolve_arg;
} dialset_options;

/* Fills o with the defaults above (all limits 0 = default). */
void dialset_options_init(dialset_options *o);

/* Parses address (rpc_address_parse; copied) into a new dialset that
 * dials nothing yet. opts may be NULL (defaults; zero fields take their
 * defaults) and is copied. Returns ERR_INVAL (syntax, more than
 * max_endpoints endpoints, recv_max_bytes or reconnect times above
 * INT32_MAX, max_endpoints above RPC_MAX_ENDPOINTS), ERR_NOMEM. *out is
 * the caller's (dialset_free). */
int dialset_new(const char *address, const dialset_options *opts,
                dialset **out) WARN_UNUSED;

/* True when some endpoint is dns+tcp:// (the resolver has work). */
bool dialset_has_dns(const dialset *ds);

/* Binds ds to sock (once): registers pipe notifications on it (the
 * socket must have no others), resolves every name once (a name that
 * does not resolve yet is not an error) and dials every URL. Returns
 * ERR_INVAL (NULL, already attached), ERR_INTERNAL (nng refused the
 * notifications). */
int dialset_attach(dialset *ds, nng_socket sock) WARN_UNUSED;

/* Starts the thread that re-resolves the names every resolve_interval_ms
 * and reconciles; no thread when there is no dns+tcp endpoint. After
 * dialset_attach; once. Returns ERR_OK, ERR_INVAL (not attached, already
 * started), ERR_INTERNAL (no thread: addresses stay as resolved). */
int dialset_start_resolver(dialset *ds) WARN_UNUSED;

/* Re-resolves every name now and reconciles, as one resolver tick does
 * (for tests; thread-safe against the resolver). No-op before attach. */
void dialset_refresh(dialset *ds);

/* Copies the URLs currently dialled into urls (at most cap) and returns
 * how many there are (may exceed cap). Thread-safe. */
size_t dialset_dialers(dialset *ds, char (*urls)[RPC_MAX_URL_LEN], size_t cap);

/* Connected pipes on the socket. Lock-free; thread-safe. */
size_t dialset_connected(dialset *ds);

/* Waits until at least n pipes are connected or deadline_ns passes
 * (time_mono_ns() clock). True when reached. Thread-safe. */
bool dialset_wait_connected(dialset *ds, size_t n, int64_t deadline_ns);

/* The same for the users' public "wait until n peers are connected"
 * calls: waits at most timeout_ms. Returns ERR_OK, ERR_TIMEOUT, or
 * ERR_INVAL (NULL ds, n < 0). */
int dialset_wait_connected_ms(dialset *ds, int n,
                              uint32_t timeout_ms) WARN_UNUSED;

/* Outlier ejection settings (see above). failures 0: never eject. */
typedef struct dialset_outlier {
  uint32_t failures; /* consecutive failed replies that eject a replica */
  uint32_t base_ms;  /* first ejection */
  uint32_t max_ms;   /* longest ejection, and the memory of past ones */
} dialset_outlier;

/* Counts a reply that came on pipe p: ok resets the replica's streak of
 * failures, a failure extends it and may eject the replica (see above).
 * Lock-free when ok and no replica is failing. Thread-safe; never from a
 * pipe notification. */
void dialset_report(dialset *ds, nng_pipe p, bool ok, const dialset_outlier *o);

/* An attempt sent at sent_ns (time_mono_ns clock) timed out without a
 * reply: every connected pipe that brought no reply (dialset_report)
 * since sent_ns counts a failure toward its replica's ejection, as
 * dialset_report's failures do - provided some other pipe did bring one
 * (a silence shared by all tells no replica apart). Thread-safe; never
 * from a pipe notification. */
void dialset_report_timeout(dialset *ds, int64_t sent_ns,
                            const dialset_outlier *o);

/* Dials again the ejected URLs whose time is up. Lock-free when none is
 * due. Thread-safe. */
void dialset_tick(dialset *ds);

/* Stops and joins the resolver thread (if any); afterwards the dialers
 * no longer change. Idempotent, NULL-safe. Call before closing the
 * socket. */
void dialset_stop(dialset *ds);

/* dialset_stop, then frees ds. The dialers are not closed: they belong
 * to the socket, which must be closed before this (its pipe
 * notifications point at ds). NULL-safe. */
void dialset_free(dialset *ds);

#endif
